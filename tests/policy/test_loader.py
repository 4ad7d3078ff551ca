"""Config loading (gateway/policy/loader.py): every mistake names file, line and key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.policy.loader import load_model, load_policies
from gateway.policy.schema import FieldCatalog, Jurisdictions, RecipientPolicy, TransferCategory

REPO = Path(__file__).resolve().parents[2]

JURISDICTIONS = """\
# EU/EEA members and Art. 45 decisions
eea: [AT, BE, DE, GR, IS, LI, "NO", SE]  # YAML 1.1: bare NO is false
eea_source: https://eur-lex.europa.eu/
adequacy:
  - country: JP
    territory: Japan
    decision: Implementing Decision (EU) 2019/419
    adopted: 2019-01-23
    scope: private sector
    source: OJ L 76, 19.3.2019
    confirmed: true
  - country: GB
    territory: United Kingdom
    decision: Implementing Decision (EU) 2021/1772
    adopted: 2021-06-28
    valid_until: 2025-12-27
    scope: UK GDPR
    source: OJ L 360, 11.10.2021
    confirmed: false
"""

FIELDS = """\
fields:
  name:
    category: user.contact.name
    description: Full name of the holder
    epp: name
  email:
    category: user.contact.email
    description: E-mail address
  national_id:
    category: user.government_id
    description: National identity number
  country:
    category: user.contact.address.country
    description: Country of the postal address
"""

SE = """\
# Internetstiftelsen, .se and .nu
recipient: iis
name: Internetstiftelsen
kind: registry
role: controller
tlds: [se, nu]
country: SE
protocol: epp
purposes:
  - domain_registration
source: https://internetstiftelsen.se/
confirmed: true
fields:
  name:
    send: always
  email:
    send: if_present
  national_id:
    send: always
    transform: iis_orgno
epp:
  contacts:
    registrant: subject
  extensions: [iis]
  disclose_person:
    flag: 0
    elements: [name, addr, voice, email]
safeguards:
  - article: 46(2)(c)
    instrument: SCC 2021/914
    signed: 2022-01-01
    source: contract archive
    confirmed: true
"""

COM = """\
recipient: verisign
name: VeriSign
kind: registry
role: controller
tlds: [com, net]
country: US
protocol: epp
purposes: [domain_registration]
source: https://www.verisign.com/
confirmed: true
fields:
  country:
    send: never
    reason: thin registry
epp: {}
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in text"
    return hits[occurrence - 1]


def write_config(tmp_path: Path, **recipients: str) -> Path:
    cfg = tmp_path / "config"
    (cfg / "recipients").mkdir(parents=True)
    (cfg / "jurisdictions.yaml").write_text(JURISDICTIONS, encoding="utf-8")
    (cfg / "fields.yaml").write_text(FIELDS, encoding="utf-8")
    for name, text in (recipients or {"se": SE, "com": COM}).items():
        (cfg / "recipients" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return cfg


def recipient_error(tmp_path: Path, text: str) -> tuple[Path, str]:
    """Load a single recipient file through load_model and return (path, ConfigError detail)."""
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_model(path, RecipientPolicy)
    return path, info.value.detail


def assert_points_at(detail: str, path: Path, line: int, keypath: str) -> None:
    prefix = f"{path}:{line}: {keypath}: "
    assert detail.startswith(prefix), f"{detail!r} does not start with {prefix!r}"
    assert len(detail) > len(prefix)  # a reason follows


# --------------------------------------------------------------------------------------------
# the happy path
# --------------------------------------------------------------------------------------------


def test_minimal_valid_config_loads(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    ps = load_policies(cfg)
    assert set(ps.recipients) == {"iis", "verisign"}
    assert set(ps.by_tld) == {"se", "nu", "com", "net"}
    se = ps.registry_for("se")
    assert se is not None
    assert se is ps.registry_for("nu") is ps.recipients["iis"]
    assert se.fields["name"].required is True  # 'always' implies required
    assert se.fields["national_id"].transform == "iis_orgno"
    assert se.epp is not None and se.epp.disclose_person is not None
    assert se.safeguards[0].signed.isoformat() == "2022-01-01"
    assert ps.registry_for("org") is None
    assert not ps.recipients["verisign"].sends_personal_data
    assert ps.jurisdictions.adequacy[1].valid_until is not None
    assert set(ps.catalog.fields) == {"name", "email", "national_id", "country"}


def test_loaded_policy_drives_classification(tmp_path: Path) -> None:
    import datetime as dt

    from gateway.policy.classify import classify_transfer

    ps = load_policies(write_config(tmp_path))
    com = ps.recipients["verisign"]
    when = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    assert classify_transfer(com, ps.jurisdictions, when, "domain_registration").category is (
        TransferCategory.BLOCKED
    )
    assert classify_transfer(
        com, ps.jurisdictions, when, "domain_registration", carries_personal_data=com.sends_personal_data
    ).category is TransferCategory.NO_PERSONAL_DATA


def test_real_config_directory_loads() -> None:
    ps = load_policies(REPO / "config")
    assert {"se", "com", "cn"} <= set(ps.by_tld)


# --------------------------------------------------------------------------------------------
# bad recipient files: file, line, key path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["se", "SWE", "S1", "'46'"])
def test_bad_country(tmp_path: Path, bad: str) -> None:
    text = SE.replace("country: SE", f"country: {bad}")
    path, detail = recipient_error(tmp_path, text)
    assert_points_at(detail, path, line_of(text, f"country: {bad}"), "country")


@pytest.mark.parametrize("bad", ["soon", "'2022-13-01'", "'2022-02-30'", "2022/01/01"])
def test_bad_date(tmp_path: Path, bad: str) -> None:
    text = SE.replace("signed: 2022-01-01", f"signed: {bad}")
    path, detail = recipient_error(tmp_path, text)
    assert_points_at(detail, path, line_of(text, f"signed: {bad}"), "safeguards.0.signed")


def test_unquoted_impossible_date(tmp_path: Path) -> None:
    text = SE.replace("signed: 2022-01-01", "signed: 2022-02-30")
    path, detail = recipient_error(tmp_path, text)
    assert str(path) in detail
    assert f":{line_of(text, 'signed: 2022-02-30')}:" in detail


def test_missing_required_key(tmp_path: Path) -> None:
    text = SE.replace("role: controller\n", "")
    path, detail = recipient_error(tmp_path, text)
    assert re.match(rf"{re.escape(str(path))}:\d+: role: Field required", detail)


def test_model_level_rule_is_reported(tmp_path: Path) -> None:
    text = SE.split("epp:\n")[0]  # protocol: epp without an epp section
    path, detail = recipient_error(tmp_path, text)
    assert detail.startswith(f"{path}:")
    assert "needs an 'epp' section" in detail


def test_never_with_transform_points_at_field(tmp_path: Path) -> None:
    text = SE.replace("    send: always\n    transform: iis_orgno",
                      "    send: never\n    transform: iis_orgno")
    path, detail = recipient_error(tmp_path, text)
    key_line = line_of(text, "  national_id:")
    # the key line, or (see the xfail above) the first line of its block
    prefixes = [f"{path}:{n}: fields.national_id: " for n in (key_line, key_line + 1)]
    assert any(detail.startswith(p) for p in prefixes), detail
    assert "never goes" in detail


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = SE.replace("role: controller\n", "role: controller\n  oops: indented\n")
    path, detail = recipient_error(tmp_path, text)
    line = line_of(text, "oops: indented")
    assert detail.startswith(str(path))
    assert re.search(rf":(line )?{line}: not valid YAML", detail), detail


def test_yaml_syntax_error_tab(tmp_path: Path) -> None:
    text = SE.replace("  extensions: [iis]", "\textensions: [iis]")
    path, detail = recipient_error(tmp_path, text)
    assert detail.startswith(str(path))
    assert re.search(rf":(line )?{line_of(text, 'extensions: [iis]')}: not valid YAML", detail), detail


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_top_level_must_be_mapping(tmp_path: Path, text: str) -> None:
    path, detail = recipient_error(tmp_path, text)
    assert detail == f"{path}:1: top level must be a mapping"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "absent.yaml", RecipientPolicy)


# --------------------------------------------------------------------------------------------
# cross-file checks in load_policies
# --------------------------------------------------------------------------------------------


def test_bad_recipient_file_stops_loading(tmp_path: Path) -> None:
    bad = COM.replace("kind: registry", "kind: registrar")
    cfg = write_config(tmp_path, se=SE, com=bad)
    with pytest.raises(ConfigError) as info:
        load_policies(cfg)
    com = cfg / "recipients" / "com.yaml"
    assert_points_at(info.value.detail, com, line_of(bad, "kind: registrar"), "kind")


def test_field_not_in_catalog_names_file_and_key(tmp_path: Path) -> None:
    bad = SE.replace("  email:\n", "  shoe_size:\n")
    cfg = write_config(tmp_path, se=bad)
    with pytest.raises(ConfigError) as info:
        load_policies(cfg)
    detail = info.value.detail
    assert str(cfg / "recipients" / "se.yaml") in detail
    assert "fields.shoe_size" in detail
    assert "not a field in fields.yaml" in detail


def test_field_not_in_catalog_names_line(tmp_path: Path) -> None:
    bad = SE.replace("  email:\n", "  shoe_size:\n")
    cfg = write_config(tmp_path, se=bad)
    with pytest.raises(ConfigError) as info:
        load_policies(cfg)
    assert_points_at(info.value.detail, cfg / "recipients" / "se.yaml", line_of(bad, "shoe_size:"),
                     "fields.shoe_size")


def test_duplicate_tld_names_file_and_owner(tmp_path: Path) -> None:
    bad = COM.replace("tlds: [com, net]", "tlds: [com, se]")
    cfg = write_config(tmp_path, se=SE, zz=bad)
    with pytest.raises(ConfigError) as info:
        load_policies(cfg)
    detail = info.value.detail
    assert str(cfg / "recipients" / "zz.yaml") in detail
    assert "tlds" in detail
    assert "'.se' already belongs to iis" in detail


def test_duplicate_tld_names_line(tmp_path: Path) -> None:
    bad = COM.replace("tlds: [com, net]", "tlds: [com, se]")
    cfg = write_config(tmp_path, se=SE, zz=bad)
    with pytest.raises(ConfigError) as info:
        load_policies(cfg)
    detail = info.value.detail
    zz = re.escape(str(cfg / "recipients" / "zz.yaml"))
    assert re.match(rf"{zz}:{line_of(bad, 'tlds:')}: tlds(\.1)?: ", detail), detail


def test_duplicate_recipient(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, se=SE, zz=COM.replace("recipient: verisign", "recipient: iis")
                       .replace("tlds: [com, net]", "tlds: [zz]"))
    with pytest.raises(ConfigError, match="'iis' is defined twice"):
        load_policies(cfg)


def test_no_recipient_files(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, se=SE)
    (cfg / "recipients" / "se.yaml").unlink()
    with pytest.raises(ConfigError, match="no recipient policy files"):
        load_policies(cfg)


def test_missing_jurisdictions_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    (cfg / "jurisdictions.yaml").unlink()
    with pytest.raises(ConfigError, match=r"jurisdictions\.yaml: cannot read"):
        load_policies(cfg)


# --------------------------------------------------------------------------------------------
# jurisdictions and fields files
# --------------------------------------------------------------------------------------------


def jurisdictions_error(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = tmp_path / "jurisdictions.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_model(path, Jurisdictions)
    return path, info.value.detail


def test_jurisdictions_valid(tmp_path: Path) -> None:
    path = tmp_path / "jurisdictions.yaml"
    path.write_text(JURISDICTIONS, encoding="utf-8")
    j = load_model(path, Jurisdictions)
    assert "GR" in j.eea
    assert [d.country for d in j.adequacy] == ["JP", "GB"]


def test_bare_no_for_norway_is_a_country_code(tmp_path: Path) -> None:
    """YAML 1.1 would read an unquoted NO as false; the loader keeps only true/false as booleans."""
    text = JURISDICTIONS.replace('"NO"', "NO")
    path = tmp_path / "jurisdictions.yaml"
    path.write_text(text, encoding="utf-8")
    assert "NO" in load_model(path, Jurisdictions).eea


def test_fields_catalog_bad_category(tmp_path: Path) -> None:
    text = FIELDS.replace("category: user.contact.email", "category: contact.email")
    path = tmp_path / "fields.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_model(path, FieldCatalog)
    line = line_of(text, "category: contact.email")
    assert_points_at(info.value.detail, path, line, "fields.email.category")


# --------------------------------------------------------------------------------------------
# one edit of a valid file, and where the error must point
# --------------------------------------------------------------------------------------------

POINTED_ERRORS = [
    # (valid text, replace this, with this, the line that holds ..., key path, the reason contains)
    pytest.param(SE, "confirmed: true\nfields:", "confirmed: perhaps\nfields:",
                 "confirmed: perhaps", "confirmed", "boolean", id="wrong_type_scalar"),
    pytest.param(SE, "tlds: [se, nu]", "tlds: se", "tlds: se", "tlds", "", id="wrong_type_list_expected"),
    pytest.param(SE, "    send: if_present", "    send: sometimes",
                 "send: sometimes", "fields.email.send", "", id="wrong_literal_nested"),
    pytest.param(SE, "  extensions: [iis]", "  extensions:\n    - iis\n    - verisign",
                 "- verisign", "epp.extensions.1", "", id="bad_list_item_points_at_item"),
    pytest.param(SE, "kind: registry\n", "kind: registry\ncolour: blue\n",
                 "colour: blue", "colour", "Extra inputs are not permitted", id="unknown_key_top_level"),
    pytest.param(SE, "    transform: iis_orgno\n", "    transform: iis_orgno\n    sendd: never\n",
                 "sendd: never", "fields.national_id.sendd", "", id="unknown_key_nested"),
    pytest.param(SE, "    signed: 2022-01-01\n", "    signed: 2022-01-01\n    expires: 2030-01-01\n",
                 "expires: 2030", "safeguards.0.expires", "", id="unknown_key_in_list_item"),
    pytest.param(SE, "epp:\n", "retention_policy:\n  years: 5\nepp:\n",
                 "retention_policy:", "retention_policy", "", id="unknown_key_with_block_value_points_at_key"),
    pytest.param(JURISDICTIONS, "GR,", "EL,", "eea: [", "eea", "'GR'", id="el_instead_of_gr_rejected"),
    pytest.param(JURISDICTIONS, "SE]", "SE, AT]",
                 "eea: [", "eea", "duplicates", id="duplicate_eea_member_rejected"),
    pytest.param(JURISDICTIONS, "valid_until: 2025-12-27", "valid_until: 2021-01-01",
                 "- country: GB", "adequacy.1", "valid_until must be after adopted",
                 id="adequacy_valid_until_before_adopted_rejected"),
    pytest.param(JURISDICTIONS, "- country: JP", "- country: Japan",
                 "- country: Japan", "adequacy.0.country", "", id="adequacy_bad_country_rejected"),
]


@pytest.mark.parametrize(("base", "old", "new", "needle", "keypath", "reason"), POINTED_ERRORS)
def test_error_points_at_file_line_and_key(
    tmp_path: Path, base: str, old: str, new: str, needle: str, keypath: str, reason: str
) -> None:
    assert old in base
    text = base.replace(old, new)
    load = jurisdictions_error if base is JURISDICTIONS else recipient_error
    path, detail = load(tmp_path, text)
    assert_points_at(detail, path, line_of(text, needle), keypath)
    assert reason in detail
