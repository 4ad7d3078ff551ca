"""Who a registrant is, for the purpose of keeping one person's records together and strangers apart.

Pure.  Only a *strong* identifier decides that two registrations are the same holder: a national ID
number together with its scheme and country.  Everything else a registrant shares with someone else
(a family e-mail address, a company switchboard number, an office address) is a *weak* identifier:
it helps staff find candidate records for a data-subject request, and it is shown with how each
candidate matched, but it never merges records on its own.

The keys here are the plaintext inputs of blind indexes (``gateway.ledger.keys.BlindIndexer``); they
are never stored as such.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from gateway.models import SCHEME_COUNTRY, NationalId, Registrant

MatchKind = Literal["strong_id", "national_id", "email", "phone", "name_address"]



def strong_key(national_id: NationalId, country: str | None = None) -> str:
    """``scheme:country:number``: equal only for the same number from the same register.

    A passport carries no country of its own in the request, so the caller gives the holder's
    citizenship (or, lacking it, the country of residence); a passport number alone never matches
    a number issued by another state."""
    issuer = SCHEME_COUNTRY[national_id.scheme] or (country or "").upper() or "XX"
    return f"{national_id.scheme.value}:{issuer}:{national_id.value}"


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def name_address_key(name: str, street: list[str] | tuple[str, ...], postal_code: str | None, country: str) -> str:
    """Name and postal address, folded so that spelling variants of case and spacing still match."""
    parts = [_fold(name), *(_fold(s) for s in street), _fold(postal_code or "").replace(" ", ""), country.upper()]
    return "|".join(parts)


def strong_identifier(reg: Registrant) -> tuple[MatchKind, str] | None:
    """The one identifier that may merge this registration with earlier ones, if it has one."""
    if reg.national_id is None:
        return None
    return ("strong_id", strong_key(reg.national_id, reg.citizenship or reg.address.country))


def identity_keys(reg: Registrant) -> list[tuple[MatchKind, str]]:
    """Every blind-index key of a registrant: the strong one (if any) first, then the national ID
    number on its own (a person quoting it in a request may not know its scheme), then the weak ones."""
    keys: list[tuple[MatchKind, str]] = []
    strong = strong_identifier(reg)
    if strong is not None and reg.national_id is not None:
        keys += [strong, ("national_id", reg.national_id.value)]
    keys.append(("email", reg.email))
    keys.append(("phone", reg.phone))
    a = reg.address
    keys.append(("name_address", name_address_key(reg.name, a.street, a.postal_code, a.country)))
    return keys
