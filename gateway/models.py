"""The ordering system's request, validated strictly at the edge.

Validation normalises as it checks (A-label domains, E.164 phones, compact ID numbers), so the
policy engine downstream works on one canonical form and never re-parses input.  Text is NFC and
visible: control, format, private-use and unassigned code points are refused (:func:`visible_text`).
Error messages raised here name the rule broken, never the value, because pydantic echoes messages
into the problem body and values are personal data.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from enum import StrEnum
from typing import Annotated, Literal

import idna
import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from stdnum import luhn
from stdnum.dk import cpr as dk_cpr
from stdnum.dk import cvr as dk_cvr
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fi import hetu as fi_hetu
from stdnum.fi import ytunnus as fi_ytunnus
from stdnum.no import fodselsnummer as no_fnr
from stdnum.no import orgnr as no_orgnr
from stdnum.se import orgnr as se_orgnr
from stdnum.se import personnummer as se_pnr

#: Code points that carry no visible text: controls (NUL, ESC, DEL, U+0085), format characters (bidi
#: overrides, zero-width space, BOM), surrogates, private use, unassigned and noncharacters (U+FFFE),
#: and the line/paragraph separators.  A registry either chokes on them (NUL, ESC fail at delivery,
#: after the fields were logged as sent) or stores them (DEL, U+0085, bidi overrides that make a name
#: read differently), so they are refused at the edge.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Letters that render as nothing (Hangul fillers, the blank Braille pattern): a "name" made of them is
#: as empty as one made of zero-width spaces.
_BLANK_LETTERS = frozenset({"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"})
#: ZWNJ and ZWJ are format characters that names legitimately need inside words (Persian, the Indic
#: scripts); they are kept there, between letters or marks, and nowhere else.
_JOINERS = frozenset({"\u200c", "\u200d"})


def _joined(text: str, i: int) -> bool:
    """Is the joiner at ``i`` between two letters or combining marks?"""
    return 0 < i < len(text) - 1 and unicodedata.category(text[i - 1])[0] in "LM" \
        and unicodedata.category(text[i + 1])[0] in "LM"


def visible_text(value: str, *, joiners: bool = True) -> str:
    """``value`` in NFC, or ValueError if it holds an invisible code point (see ``_INVISIBLE``) or has
    no visible letter or digit at all.  ``joiners`` keeps ZWNJ/ZWJ between letters (names, addresses);
    codes (postal codes, numbers, e-mail addresses) have no use for them.  The message never quotes
    the value."""
    text = unicodedata.normalize("NFC", value)
    for i, ch in enumerate(text):
        if ch in _BLANK_LETTERS or (
            unicodedata.category(ch) in _INVISIBLE and not (joiners and ch in _JOINERS and _joined(text, i))
        ):
            raise ValueError("must not contain control, format, private-use or unassigned characters")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        raise ValueError("must contain a visible letter or digit")
    return text


def _code(value: str) -> str:
    return visible_text(value, joiners=False)


def _text_or_empty(value: str) -> str:
    """An optional free-text field that may be sent empty (``state``): empty stays empty."""
    return value if value == "" else visible_text(value)


def _error_at(loc: tuple[str | int, ...], kind: str, message: str) -> ValidationError:
    """A validation error at ``loc`` below the model raising it, for a rule that involves several
    fields: a model validator's ``ValueError`` would be reported at the model itself (``loc: []`` for
    the request), which tells the caller nothing about what to fix."""
    return ValidationError.from_exception_data(
        "RegistrationRequest", [InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)]
    )


class Strict(BaseModel):
    """Unknown fields are rejected, strings are stripped, types are not coerced."""

    model_config = ConfigDict(
        extra="forbid", strict=True, str_strip_whitespace=True, frozen=True, hide_input_in_errors=True
    )


class IdScheme(StrEnum):
    SE_PERSONNUMMER = "se_personnummer"
    SE_SAMORDNINGSNUMMER = "se_samordningsnummer"
    SE_ORGANISATIONSNUMMER = "se_organisationsnummer"
    DK_CPR = "dk_cpr"
    DK_CVR = "dk_cvr"
    NO_FODSELSNUMMER = "no_fodselsnummer"
    NO_ORGANISASJONSNUMMER = "no_organisasjonsnummer"
    FI_HETU = "fi_hetu"
    FI_YTUNNUS = "fi_ytunnus"
    PASSPORT = "passport"


#: The country whose register issues each scheme's numbers; a passport's country is not in the number.
SCHEME_COUNTRY: dict[IdScheme, str | None] = {
    IdScheme.SE_PERSONNUMMER: "SE",
    IdScheme.SE_SAMORDNINGSNUMMER: "SE",
    IdScheme.SE_ORGANISATIONSNUMMER: "SE",
    IdScheme.DK_CPR: "DK",
    IdScheme.DK_CVR: "DK",
    IdScheme.NO_FODSELSNUMMER: "NO",
    IdScheme.NO_ORGANISASJONSNUMMER: "NO",
    IdScheme.FI_HETU: "FI",
    IdScheme.FI_YTUNNUS: "FI",
    IdScheme.PASSPORT: None,
}

#: Which schemes identify a natural person and which an organisation.
PERSON_SCHEMES = frozenset(
    {
        IdScheme.SE_PERSONNUMMER,
        IdScheme.SE_SAMORDNINGSNUMMER,
        IdScheme.DK_CPR,
        IdScheme.NO_FODSELSNUMMER,
        IdScheme.FI_HETU,
        IdScheme.PASSPORT,
    }
)


def _se_personal(value: str, *, coordination: bool) -> str:
    """Swedish personnummer / samordningsnummer → canonical 12 digits YYYYMMDDNNNC.

    A samordningsnummer is a personnummer with 60 added to the day; its check digit is computed
    over the digits as written (day+60), while the date check needs the real day.  stdnum knows
    only personnummer, so the date is checked on a copy with the day brought back, and the Luhn
    digit on the number as given.  The '+' separator (aged 100 or more) decides the century of a
    10-digit number, as in folkbokföringslagen § 18.
    """
    compact = se_pnr.compact(value)  # keeps the '-' or '+' before the last four digits
    digits = compact[:-5] + compact[-4:]
    if len(compact) not in (11, 13) or compact[-5] not in "-+" or not digits.isdigit():
        raise ValueError("must be 10 or 12 digits (YYMMDD-NNNC, YYMMDD+NNNC or YYYYMMDDNNNC)")
    day = int(compact[-7:-5])
    is_coordination = day > 60
    if coordination != is_coordination:
        raise ValueError(
            "samordningsnummer must have day+60" if coordination else "personnummer day must be 01-31"
        )
    real = compact[:-7] + f"{day - 60:02d}" + compact[-5:] if is_coordination else compact
    try:
        birth = se_pnr.get_birth_date(real)
    except StdnumError:
        raise ValueError("invalid date") from None
    if not luhn.is_valid(digits[-10:]):
        raise ValueError("invalid check digit")
    return f"{birth.year:04d}{digits[-8:]}"


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise_national_id(scheme: IdScheme, value: str) -> str:
    """Check the number's checksum and return its canonical compact form.

    ASCII only: ``"²".isdigit()`` is true and ``int("²")`` fails with a message quoting the number,
    and ``int`` reads full-width and Arabic-Indic digits; no scheme here writes its numbers so."""
    if not value.isascii():
        raise ValueError("must be written in ASCII letters, digits and separators")
    try:
        match scheme:
            case IdScheme.SE_PERSONNUMMER:
                return _se_personal(value, coordination=False)
            case IdScheme.SE_SAMORDNINGSNUMMER:
                return _se_personal(value, coordination=True)
            case IdScheme.SE_ORGANISATIONSNUMMER:
                compact = str(se_orgnr.validate(value))
                return f"{compact[:6]}-{compact[6:]}"
            case IdScheme.DK_CPR:
                return str(dk_cpr.validate(value))
            case IdScheme.DK_CVR:
                return str(dk_cvr.validate(value))
            case IdScheme.NO_FODSELSNUMMER:
                return str(no_fnr.validate(value))
            case IdScheme.NO_ORGANISASJONSNUMMER:
                return str(no_orgnr.validate(value))
            case IdScheme.FI_HETU:
                return str(fi_hetu.validate(value))
            case IdScheme.FI_YTUNNUS:
                return str(fi_ytunnus.validate(value))
            case IdScheme.PASSPORT:
                # checked before upper-casing, and upper-cased as ASCII only: "ß".upper() is "SS", so
                # a Unicode case fold turns five characters into a different, ten-letter number
                if not re.fullmatch(r"[A-Za-z0-9]{5,20}", value):
                    raise ValueError("passport number must be 5-20 ASCII letters or digits")
                return value.translate(_ASCII_UPPER)
    except StdnumError:
        raise ValueError(f"not a valid {scheme.value} (format or check digit)") from None
    raise ValueError("unknown scheme")  # pragma: no cover - enum is exhaustive


def _country(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValueError("must be an ISO 3166-1 alpha-2 code in upper case")
    if pycountry.countries.get(alpha_2=value) is None:
        raise ValueError("not an assigned ISO 3166-1 alpha-2 code")
    return value


def _phone(value: str) -> str:
    """E.164; the EPP ``+CC.NNNN`` form is derived from this by :func:`epp_phone`."""
    _code(value)  # libphonenumber skips what it cannot read, so a NUL would pass through it
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("must be an international number starting with + and a country code") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number for its country code")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def epp_phone(e164: str) -> str:
    """RFC 5733 ``e164Type``: ``+CC.NUMBER``."""
    parsed = phonenumbers.parse(e164, None)
    return f"+{parsed.country_code}.{parsed.national_number}"


def to_a_label(value: str) -> str:
    """IDNA 2008 (UTS 46 mapping off: the ordering system must send the name it means)."""
    name = value.rstrip(".")
    if not name or len(name) > 253:
        raise ValueError("domain name must be 1-253 characters")
    try:
        ascii_name = idna.encode(name.lower(), uts46=False).decode("ascii")
    except idna.IDNAError:
        raise ValueError("not a valid IDNA 2008 domain name") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValueError("domain name must have at least two labels")
    for label in labels:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", label):
            raise ValueError("each label must be LDH, 1-63 characters, not starting or ending with '-'")
    return ascii_name


#: A name or address line: visible text in NFC (see :func:`visible_text`).
Text = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(visible_text)]
#: A number, code or address written by machines and people alike: visible, no joiners.
Code = Annotated[str, AfterValidator(_code)]


class NationalId(Strict):
    scheme: IdScheme
    value: Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_code)]

    @field_validator("value")
    @classmethod
    def _checksum(cls, v: str, info: ValidationInfo) -> str:
        scheme = info.data.get("scheme")
        if scheme is None:  # the scheme itself was refused; that error names it
            return v
        return normalise_national_id(scheme, v)


class PostalAddress(Strict):
    street: Annotated[list[Text], Field(min_length=1, max_length=3)]
    city: Text
    state: Annotated[str, Field(max_length=255), AfterValidator(_text_or_empty)] | None = None
    postal_code: Annotated[str, Field(min_length=1, max_length=16), AfterValidator(_code)] | None = None
    country: str

    @field_validator("country")
    @classmethod
    def _check_country(cls, v: str) -> str:
        return _country(v)


class Registrant(Strict):
    kind: Literal["person", "organisation"]
    name: Text
    organisation: Text | None = None
    national_id: NationalId | None = None
    vat_number: Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9A-Z]{2,13}$")] | None = None
    address: PostalAddress
    email: Annotated[str, Field(min_length=3, max_length=254)]
    phone: Annotated[str, Field(max_length=32)]
    fax: Annotated[str, Field(max_length=32)] | None = None
    language: Annotated[str, Field(pattern=r"^[a-z]{2}$")] = "sv"
    citizenship: str | None = None
    birth_date: dt.date | None = None  # only where a registry needs it (.fi: foreign persons)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        _code(v)
        try:
            return str(validate_email(v, check_deliverability=False).normalized)
        except EmailNotValidError:
            raise ValueError("not a valid e-mail address") from None

    @field_validator("phone", "fax")
    @classmethod
    def _phones(cls, v: str | None) -> str | None:
        return None if v is None else _phone(v)

    @field_validator("citizenship")
    @classmethod
    def _citizenship(cls, v: str | None) -> str | None:
        return None if v is None else _country(v)

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if pycountry.languages.get(alpha_2=v) is None:
            raise ValueError("not an ISO 639-1 language code")
        return v

    @field_validator("birth_date")
    @classmethod
    def _birth_date(cls, v: dt.date | None) -> dt.date | None:
        if v is not None and not dt.date(1880, 1, 1) <= v <= dt.date.today():
            raise ValueError("birth date must be a past date after 1880")
        return v

    @model_validator(mode="after")
    def _kind_consistent(self) -> Registrant:
        if self.kind == "organisation" and self.organisation is None:
            raise _error_at(("organisation",), "missing", "an organisation registrant needs 'organisation'")
        if self.national_id is not None:
            is_person_id = self.national_id.scheme in PERSON_SCHEMES
            if is_person_id != (self.kind == "person"):
                raise _error_at(("national_id", "scheme"), "scheme_kind_mismatch",
                                "national_id scheme does not match registrant kind")
        return self


Hostname = Annotated[str, Field(min_length=1, max_length=253)]


class UsNexus(Strict):
    """.us nexus declaration (usTLD Nexus Requirements): who may hold a .us name."""

    app_purpose: Literal["P1", "P2", "P3", "P4", "P5"]
    nexus_category: Literal["C11", "C12", "C21", "C31", "C32"]
    nexus_country: str | None = None

    @model_validator(mode="after")
    def _country_for_foreign(self) -> UsNexus:
        if self.nexus_category in ("C31", "C32") and self.nexus_country is None:
            raise _error_at(("nexus_country",), "missing", "nexus categories C31/C32 need nexus_country")
        return self

    @field_validator("nexus_country")
    @classmethod
    def _nexus_country(cls, v: str | None) -> str | None:
        return None if v is None else _country(v)


class RegistrationRequest(Strict):
    order_ref: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    domain: Annotated[str, Field(min_length=1, max_length=253)]
    period_years: Annotated[int, Field(ge=1, le=10)] = 1
    nameservers: Annotated[list[Hostname], Field(max_length=13)] = []
    purpose: Literal["domain_registration"] = "domain_registration"
    registrant: Registrant
    us_nexus: UsNexus | None = None

    @model_validator(mode="after")
    def _nexus_only_for_us(self) -> RegistrationRequest:
        if self.us_nexus is not None and self.tld != "us":
            raise _error_at(("us_nexus",), "us_nexus_not_allowed", "us_nexus is only for .us names")
        return self

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        return to_a_label(v)

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, v: list[str]) -> list[str]:
        out = [to_a_label(ns) for ns in v]
        if len(set(out)) != len(out):
            raise ValueError("name servers must be distinct")
        return out

    @property
    def tld(self) -> str:
        return self.domain.rsplit(".", 1)[1]


#: An EPP ``domain:authInfo`` password as registries hand them out: printable ASCII without spaces (RFC 5731
#: only asks for a normalizedString; no registry we speak to issues spaces or non-ASCII in its codes).
AUTH_CODE_PATTERN = r"^[\x21-\x7e]+$"


class TransferRequest(RegistrationRequest):
    """A domain transferred in: the registration body (validated, minimised and classified like one, for the
    contacts the registry needs once the transfer is approved) and the holder's auth code.  The code is a
    secret: it travels sealed in the registry's outbox row and is never logged, stored in clear or echoed."""

    auth_code: Annotated[str, Field(min_length=1, max_length=128, pattern=AUTH_CODE_PATTERN)]


class RenewRequest(Strict):
    """A renewal: the years to add to the expiry the registry shows (its own maximum validity still applies)."""

    years: Annotated[int, Field(ge=1, le=10)]
