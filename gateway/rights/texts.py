"""The words of an extract letter, through the ``letters`` gettext catalogue (Swedish and English).

Every sentence here is an English message id marked with :func:`N_` and looked up in
``gateway/locale/<lang>/LC_MESSAGES/letters.po`` when a letter is made, so translators edit one file
per language and ``tests/rights/test_letter_catalogue.py`` can check that every id is translated.
Facts that come from configuration (recipient names, lawful bases, transfer instruments, retention
of a partner) are English in the YAML files; they are looked up in the same catalogue, and what has
no translation is reported to staff (:func:`untranslated`) rather than put in a Swedish letter
unnoticed.  Pure functions only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from functools import cache
from zoneinfo import ZoneInfo

import pycountry
from babel import Locale
from babel.dates import format_date, format_datetime

from gateway.i18n import Lang as Lang
from gateway.i18n import gettext_for

LANGS: tuple[Lang, ...] = ("sv", "en")
#: Letters give times in the registrar's local time, with the zone named (the reader need not know UTC).
LOCAL_ZONE = ZoneInfo("Europe/Stockholm")
DASH = "\u2013"  # en dash, for an empty cell


def N_(msgid: str) -> str:
    """Marks an English message id of the ``letters`` domain; translated where it is shown."""
    return msgid


def tr(lang: Lang, msgid: str) -> str:
    """``msgid`` in ``lang`` (the id itself when the catalogue has no translation)."""
    return gettext_for(lang, "letters").gettext(msgid)


def has_translation(lang: Lang, msgid: str) -> bool:
    return lang == "en" or gettext_for(lang, "letters").gettext(msgid) != msgid


# -- dates ----------------------------------------------------------------------------------------------


def _parse(timestamp: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def when(timestamp: str | None, lang: Lang) -> str:
    """``2026-11-25T16:53:18Z`` → ``25 november 2026, 17:53 (centraleuropeisk normaltid)``: local time of
    the registrar with the zone named in the reader's language (the extract keeps the exact UTC value)."""
    if not timestamp:
        return DASH
    t = _parse(timestamp)
    if t is None:
        return timestamp
    return format_datetime(t.astimezone(LOCAL_ZONE), "d MMMM y, HH:mm (zzzz)", locale=lang)


def day(value: str | None, lang: Lang) -> str:
    """A date (``2027-02-25`` or a timestamp's day, read in local time) in words: ``25 februari 2027``."""
    if not value:
        return "?"
    if len(value) == 10:
        try:
            return format_date(dt.date.fromisoformat(value), "d MMMM y", locale=lang)
        except ValueError:
            return value
    t = _parse(value)
    return value if t is None else format_date(t.astimezone(LOCAL_ZONE).date(), "d MMMM y", locale=lang)


# -- the letter's fixed prose -----------------------------------------------------------------------------

SOURCE = N_("The data was provided when the domain name was ordered, by you or by whoever ordered it on your "
            "behalf (for example your employer or a reseller), through our ordering system.")
AUTOMATED = N_("Which data goes to which recipient is decided automatically by fixed rules for each recipient "
               "(data minimisation and the rules for transfers to third countries). No profiling takes place.")
VERIFY = N_("Every disclosure above is part of our tamper-evident log (a Merkle tree as in RFC 9162). The "
            "machine-readable extract (JSON) carries the log rows, inclusion proofs and a signed checkpoint; "
            "anyone can check it with our published public key: gateway extract verify EXTRACT.json "
            "--public-key KEY.pem")

RIGHTS: tuple[tuple[str, str, str], ...] = (
    ("rectification", "16", N_("Right to rectification (Art. 16): you may ask us to correct inaccurate data "
                               "about you. We then inform every recipient of the data (Art. 19).")),
    ("erasure", "17", N_("Right to erasure (Art. 17): you may ask us to erase the data. While a domain name is "
                         "registered its registry must have a holder, so data held by the registry can be "
                         "erased only once the domain name is deleted or transferred.")),
    ("restriction", "18", N_("Right to restriction (Art. 18): you may ask us not to disclose the data further, "
                             "for example while a request for rectification is examined.")),
    ("objection", "21", N_("Right to object (Art. 21): you may object to direct marketing at any time; "
                           "disclosures for that purpose then stop.")),
    ("complaint", "77", N_("Right to lodge a complaint (Art. 77): you may complain to the Swedish Authority for "
                           "Privacy Protection (Integritetsskyddsmyndigheten, IMY), www.imy.se.")),
)


def rights(lang: Lang) -> list[dict[str, str]]:
    return [{"right": r, "article": a, "text": tr(lang, t)} for r, a, t in RIGHTS]


OUTCOMES: dict[str, str] = {
    "delivered": N_("Disclosed"),
    "failed": N_("Failed (the recipient did not accept the data)"),
    "blocked": N_("Stopped: nothing was sent"),
    "refused": N_("Refused by the recipient: the data was not kept"),
    "possibly_delivered": N_("Possibly disclosed: sent, but no answer came (the recipient may hold the data)"),
    "deleted": N_("Deleted at the recipient"),
}

VALUE_NOTES: dict[str, str] = {
    "erased": N_("erased (the encryption key was destroyed; only the record of the disclosure remains)"),
    "purged": N_("purged after the retention period (only the record of the disclosure remains)"),
    "none_sent": N_("no values were disclosed"),
}


def outcome_text(outcome: str, lang: Lang) -> str:
    return tr(lang, OUTCOMES[outcome]) if outcome in OUTCOMES else outcome


def value_note_text(note: str, lang: Lang) -> str:
    return tr(lang, VALUE_NOTES[note])


# -- field names and values -----------------------------------------------------------------------------

#: The registrant fields (config/fields.yaml) as words a data subject reads.
FIELDS: dict[str, str] = {
    "kind": N_("type of holder"),
    "name": N_("name"),
    "organisation": N_("organisation"),
    "national_id": N_("national identity number"),
    "national_id_scheme": N_("type of identity number"),
    "vat_number": N_("VAT number"),
    "street": N_("street address"),
    "city": N_("city"),
    "state": N_("state or region"),
    "postal_code": N_("postcode"),
    "country": N_("country"),
    "email": N_("e-mail address"),
    "phone": N_("telephone number"),
    "fax": N_("fax number"),
    "language": N_("language"),
    "birth_date": N_("date of birth"),
    "citizenship": N_("citizenship"),
}

_KINDS = {"person": N_("private individual"), "organisation": N_("organisation")}
_SCHEMES = {
    "se_personnummer": N_("Swedish personal identity number"),
    "se_samordningsnummer": N_("Swedish coordination number"),
    "se_organisationsnummer": N_("Swedish organisation number"),
    "dk_cpr": N_("Danish personal identity number (CPR)"),
    "dk_cvr": N_("Danish company number (CVR)"),
    "no_fodselsnummer": N_("Norwegian national identity number"),
    "no_organisasjonsnummer": N_("Norwegian organisation number"),
    "fi_hetu": N_("Finnish personal identity code"),
    "fi_ytunnus": N_("Finnish business ID"),
    "passport": N_("passport number"),
}
_ID = re.compile(r"^\[([A-Z]{2})\](.+)$")


def field_name(key: str, lang: Lang) -> str:
    """A field's name in words (``email`` → ``e-postadress``); an unknown key is shown as it is."""
    return tr(lang, FIELDS[key]) if key in FIELDS else key


def field_order(key: str) -> tuple[int, str]:
    """Fields in the order a person reads them (name first, as in the registration), unknown ones last."""
    order = list(FIELDS)
    return (order.index(key) if key in FIELDS else len(order), key)


def field_names(keys: list[str] | tuple[str, ...], lang: Lang) -> str:
    return ", ".join(field_name(k, lang) for k in sorted(keys, key=field_order)) or DASH


def language_name(code: str, lang: Lang) -> str:
    try:
        return str(Locale(lang).languages.get(code, code))
    except (ValueError, TypeError):
        return code


def value_text(key: str, value: object, lang: Lang) -> str:
    """A disclosed value as the reader recognises it: codes in words, lists joined."""
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(key, v, lang) for v in value)
    text = str(value)
    if key == "kind" and text in _KINDS:
        return tr(lang, _KINDS[text])
    if key == "national_id_scheme":
        return tr(lang, _SCHEMES[text]) if text in _SCHEMES else text
    if key in ("country", "citizenship") and re.fullmatch(r"[A-Z]{2}", text):
        return country_name(text, lang)
    if key == "language" and re.fullmatch(r"[a-z]{2}", text):
        return language_name(text, lang)
    if key == "national_id" and (m := _ID.match(text)):
        return f"{m.group(2)} ({country_name(m.group(1), lang)})"
    return text


# -- facts from configuration, in the reader's language ---------------------------------------------------

#: Notes in configuration meant for staff; a letter never shows them (:func:`letter_safe`).
INTERNAL = re.compile(r"\s*\([^()]*\bUNCONFIRMED\b[^()]*\)|\s*\bUNCONFIRMED\b")
_REGISTRY = re.compile(r"^(?P<name>.+) \((?P<tld>\.[a-z0-9-]+) registry\)$")
_OPERATOR = re.compile(r"^(?P<tld>\.[a-z0-9-]+) registry operator$")
N_("{name} ({tld} registry)")
N_("{tld} registry operator")


def letter_safe(text: str) -> str:
    """``text`` without staff notes such as "(identity UNCONFIRMED)"."""
    return INTERNAL.sub("", text).strip()


def recipient_name(name: str, lang: Lang) -> str:
    """A recipient's name: "Internetstiftelsen (.se registry)" → "Internetstiftelsen (registret för .se)"."""
    name = letter_safe(name)
    if has_translation(lang, name) and lang != "en":
        return tr(lang, name)
    if m := _REGISTRY.match(name):
        return tr(lang, "{name} ({tld} registry)").format(name=m["name"], tld=m["tld"])
    if m := _OPERATOR.match(name):
        return tr(lang, "{tld} registry operator").format(tld=m["tld"])
    return tr(lang, name)


_INSTRUMENT_PARTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Commission Implementing Decision"), N_("Commission Implementing Decision")),
    (re.compile(r"Commission Decision"), N_("Commission Decision")),
    (re.compile(r"\bmodule (\d)"), N_("module {n}")),
    (re.compile(r"\(controller to processor\)"), N_("(controller to processor)")),
    (re.compile(r"\(controller to controller\)"), N_("(controller to controller)")),
)


def instrument_text(instrument: str | None, lang: Lang) -> str:
    """A transfer instrument's name in the reader's language (its number stays as it is)."""
    if not instrument:
        return ""
    text = letter_safe(instrument)
    if has_translation(lang, text) and lang != "en":
        return tr(lang, text)
    for pattern, msgid in _INSTRUMENT_PARTS:
        words = tr(lang, msgid)

        def replace(m: re.Match[str], words: str = words) -> str:
            return words.format(n=m.group(1) if m.groups() else "")

        text = pattern.sub(replace, text)
    return text


def config_text(text: str | None, lang: Lang) -> str:
    """An English fact from configuration (a lawful basis, a partner's retention) in ``lang`` when the
    catalogue has it; else as written (staff see it in :func:`untranslated`)."""
    return tr(lang, letter_safe(text)) if text else DASH


def untranslated(texts: list[str], lang: Lang) -> list[str]:
    """Which of ``texts`` (configuration facts) have no translation into ``lang``."""
    return sorted({t for t in texts if t and not has_translation(lang, letter_safe(t))})


def transfer_text(category: str, article: str | None, instrument: str | None, lang: Lang) -> str:
    """The Chapter V basis of one disclosure, in words (Art. 15(2): name the safeguard)."""
    art = article or "?"
    inst = instrument_text(instrument, lang)
    match category:
        case "no_personal_data":
            return tr(lang, N_("No personal data was disclosed"))
        case "eea":
            return tr(lang, N_("Within the EU/EEA: no transfer to a third country"))
        case "adequacy":
            return tr(lang, N_("Third country with an adequacy decision (Art. {article}): {instrument}")).format(
                article=art, instrument=inst)
        case "safeguard":
            return tr(lang, N_("Third country; appropriate safeguards (Art. {article}): {instrument}. You may ask "
                               "us for a copy.")).format(article=art, instrument=inst)
        case "derogation":
            return tr(lang, N_("Third country; derogation for a specific situation (Art. {article})")).format(
                article=art)
        case "blocked":
            return tr(lang, N_("No valid basis for the transfer: nothing was sent"))
    return category


def safeguard_text(category: str, article: str | None, instrument: str | None) -> str | None:
    """Art. 15(2): the safeguard a third-country transfer rests on (None inside the EEA); machine-facing."""
    if category in ("adequacy", "safeguard", "derogation") and article:
        return f"Art. {article}" + (f": {instrument}" if instrument else "")
    return None


@cache
def _countries(lang: Lang) -> dict[str, str]:
    return dict(Locale(lang).territories)


def country_name(code: str, lang: Lang) -> str:
    """The country's usual name in ``lang`` (CLDR through Babel: "Sverige", "Sweden")."""
    name = _countries(lang).get(code)
    if name:
        return str(name)
    c = pycountry.countries.get(alpha_2=code)
    return code if c is None else str(getattr(c, "common_name", None) or c.name)


# -- purposes the gateway itself defines (not in config/retention.yaml) -----------------------------------

#: Purposes of updates the gateway sends by itself; the letter states their basis and retention even when
#: the retention file does not list them (their retention follows ``as`` there; staff are warned).
BUILTIN_PURPOSES: dict[str, dict[str, str]] = {
    "rectification": {
        "description": N_("Correcting your data at the recipients after a request for rectification"),
        "lawful_basis": N_("Art. 6(1)(c) GDPR: a legal obligation to rectify (Art. 16) and to inform the "
                           "recipients (Art. 19)"),
        "as": "domain_registration",
    },
    "registrant_change": {
        "description": N_("Updating the holder's data at the recipients when the holder changes it"),
        "lawful_basis": N_("Art. 6(1)(b) GDPR: necessary for the registration contract the data subject ordered"),
        "as": "domain_registration",
    },
}

# -- holdings: who holds the data now (the letter's section, the API and the staff page) --------------

_HOLDINGS_IDS: dict[str, str] = {
    "heading": N_("Who holds your data now"),
    "intro": N_("These are the recipients that hold data about you today, the objects it is in, since when, which "
                "data and what ends it. Disclosures no longer held by their recipient stay in the list above."),
    "none": N_("No recipient holds data about you today."),
    "object": N_("Object"),
    "since": N_("Since"),
    "fields": N_("Data"),
    "ends": N_("Ends"),
    "own": N_("Our own copy (the encrypted values in our log)"),
    "contact": N_("Contact object at the registry"),
    "domain": N_("Domain name"),
    "copy": N_("Copy held by the recipient"),
}


class _ByLang(Mapping[Lang, dict[str, str]]):
    """``HOLDINGS["sv"]["heading"]``: a table of message ids, translated when read."""

    def __init__(self, ids: dict[str, str]) -> None:
        self._ids = ids

    def __getitem__(self, lang: Lang) -> dict[str, str]:
        if lang not in LANGS:
            raise KeyError(lang)
        return {k: tr(lang, v) for k, v in self._ids.items()}

    def __iter__(self) -> Iterator[Lang]:
        return iter(LANGS)

    def __len__(self) -> int:
        return len(LANGS)


HOLDINGS: Mapping[Lang, dict[str, str]] = _ByLang(_HOLDINGS_IDS)

_END_REASONS: dict[str, str] = {
    "deleted": N_("deleted"), "transferred_out": N_("transferred away"), "expired": N_("expired"),
    "failed": N_("the registration did not go through"),
}

_ENDS: dict[str, str] = {
    "contact_in_use": N_("deleted when no domain of ours uses it"),
    "contact_unused": N_("no domain of ours uses it any more: deletion at the registry pending"),
    "kept_by_registry": N_("kept by the registry (refused delete, {code}) — ask the registry"),
    "delete_unanswered": N_("deletion sent, no answer: may already be deleted — confirm with the registry"),
    "domain_active": N_("deletion, transfer away or expiry on {at}"),
    "domain_active_unknown": N_("deletion, transfer away or expiry (date not known yet)"),
    "domain_ended": N_("ended {at} ({reason}); deletion at the registry pending"),
    "domain_delete_unconfirmed": N_("ended {at} ({reason}); the registry has not confirmed the deletion"),
    "escrow_active": N_("in the escrow deposits while the registration is active; the agent keeps them {reason}"),
    "escrow_ended": N_("the first full deposit after the registration ended drops it; the agent keeps older "
                       "deposits {reason}"),
    "partner_copy": N_("the recipient's retention: {reason}"),
    "partner_copy_unknown": N_("until the recipient deletes it (we may ask it to, Art. 17(2))"),
    "own_while_active": N_("kept while the registration is ours, then {reason} months"),
    "own_purge": N_("purged on {at}"),
    "own_unconfigured": N_("kept until a retention period is decided"),
    "own_erased": N_("erased (the key was destroyed); the unreadable ciphertext is purged on {at}"),
    "own_erased_unknown": N_("erased (the key was destroyed); the unreadable ciphertext is purged after the "
                             "retention period"),
}
_AS_AGREED = N_("as the agreement says")


def holding_end_text(kind: str, lang: Lang, *, at: str | None = None, reason: str | None = None,
                     code: str | None = None) -> str:
    """What ends one holding, in words (``gateway.services.holdings.End``'s ``kind`` and facts)."""
    if kind in ("partner_copy", "escrow_active", "escrow_ended") and not reason:
        kind = "partner_copy_unknown" if kind == "partner_copy" else kind
        reason = _AS_AGREED
    if kind == "own_erased" and at is None:
        kind = "own_erased_unknown"
    if kind == "domain_active" and at is None:
        kind = "domain_active_unknown"
    template = tr(lang, _ENDS[kind]) if kind in _ENDS else kind
    if reason in _END_REASONS:
        why = tr(lang, _END_REASONS[reason])
    elif reason is not None and not reason.isdigit():
        why = config_text(reason, lang)
    else:
        why = reason or "?"
    # ISO dates here (the API and the staff page); the letter writes them in words (``render``)
    return template.format(at=(at or "?")[:10], reason=why, code=code or "?")
