"""SPAR-style person lookups (Statens personadressregister): inbound personal data, logged as processing.

The service this talks to is a JSON front for SPAR (real SPAR speaks SOAP; the front is assumed to
be ours or a reseller's).  Contract::

    POST {base_url}{path}   {"personnummer": "YYYYMMDDNNNC", "purpose": "<purpose>"}
    200  {"result": "found" | "protected_identity" | "not_found" | "deregistered",
          "person": {"given_name", "surname", "address": {"care_of"?, "street", "postal_code", "city"}},
          "marketing_opt_out": bool}
    404  same as result "not_found"

The number goes in the body, never in the URL, where proxies and access logs would keep it.

SPAR returns more (sex, birth date, folkbokföring history); everything but name, address and the
direct-marketing opt-out is dropped here, at the edge.  Protected identities (skyddade
personuppgifter) come back from SPAR without name and address; if a service sends them anyway they
are dropped too.  ``marketing_opt_out`` is ``True`` whenever the register does not plainly say
otherwise: marketing may go ahead only on an explicit ``False`` for a found person.

Every lookup is itself processing of personal data, so each result carries a :class:`LookupRecord`
for the gateway to store: kind of identifier, the caller's blind index of it (a keyed hash the
caller computes, e.g. ``BlindIndexer.index("national_id", number)`` from ``gateway.ledger.keys``;
the number itself is never kept), purpose, result category, time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.http_partner import HttpPartnerClient, PartnerClientBase, PartnerEndpoint, Sleep
from gateway.errors import PermanentDeliveryError, ValidationFailed
from gateway.models import IdScheme, normalise_national_id

__all__ = [
    "AddressLookupClient",
    "LookupAddress",
    "LookupCategory",
    "LookupRecord",
    "LookupResult",
    "PersonName",
]

LookupCategory = Literal["found", "protected_identity", "not_found", "deregistered"]
IdentifierKind = Literal["personnummer", "samordningsnummer"]

_PURPOSE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, repr=False)
class PersonName:
    given_name: str
    surname: str

    def __repr__(self) -> str:  # a logged result must not print the name
        return "PersonName(<redacted>)"


@dataclass(frozen=True, repr=False)
class LookupAddress:
    street: str
    postal_code: str
    city: str
    care_of: str | None = None

    def __repr__(self) -> str:
        return "LookupAddress(<redacted>)"


@dataclass(frozen=True)
class LookupRecord:
    """The processing-log entry for one lookup: what was asked, why, what came back, when.

    Holds no personal data in clear: ``blind_index`` is the caller's keyed hash of the number, so
    the log can answer "which lookups concerned this person" (Art. 15) without storing the number.
    """

    kind: IdentifierKind
    blind_index: str
    purpose: str
    category: LookupCategory
    at: datetime
    source: str = "spar"

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "blind_index": self.blind_index,
            "purpose": self.purpose,
            "category": self.category,
            "at": self.at.astimezone(UTC).isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True)
class LookupResult:
    """Name and address only for ``found``; every other category carries neither."""

    category: LookupCategory
    marketing_opt_out: bool
    record: LookupRecord
    name: PersonName | None = field(default=None, repr=False)
    address: LookupAddress | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.category != "found" and (self.name is not None or self.address is not None):
            raise ValueError(f"a '{self.category}' result must not carry name or address")
        if self.category == "found" and (self.name is None or self.address is None):
            raise ValueError("a 'found' result needs name and address")


class _Wire(BaseModel):
    # Unknown members are ignored (SPAR's extra data is dropped here); input never enters messages.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


class _WireAddress(_Wire):
    street: str
    postal_code: str
    city: str
    care_of: str | None = None


class _WirePerson(_Wire):
    given_name: str
    surname: str
    address: _WireAddress


class _WireAnswer(_Wire):
    result: LookupCategory
    person: _WirePerson | None = None
    marketing_opt_out: bool | None = None


def _identifier(personnummer: str) -> tuple[IdentifierKind, str]:
    # SPAR holds everyone folkbokförd plus some samordningsnummer holders: accept both.
    candidates: tuple[tuple[IdentifierKind, IdScheme], ...] = (
        ("personnummer", IdScheme.SE_PERSONNUMMER),
        ("samordningsnummer", IdScheme.SE_SAMORDNINGSNUMMER),
    )
    for kind, scheme in candidates:
        try:
            return kind, normalise_national_id(scheme, personnummer)
        except ValueError:
            continue
    raise ValidationFailed(
        "personnummer is not a valid personnummer or samordningsnummer",
        errors=[{"loc": ["personnummer"], "type": "invalid"}],
    )


class AddressLookupClient(PartnerClientBase):
    """Looks people up by personnummer; use as ``async with AddressLookupClient(endpoint) as spar``.

    Lookups are reads, so they are retried under the shared partner policy without an
    idempotency key.  ``clock`` is a seam for the record's timestamp.
    """

    def __init__(
        self,
        endpoint: PartnerEndpoint,
        *,
        path: str = "/v1/lookups",
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = path
        self._http = HttpPartnerClient(endpoint, transport=transport, sleep=sleep)
        self._clock = clock or (lambda: datetime.now(UTC))

    async def lookup(self, personnummer: str, purpose: str, *, blind_index: str) -> LookupResult:
        """Ask the register about one person for ``purpose``; ``blind_index`` goes into the record.

        Raises ``ValidationFailed`` for a malformed number or purpose, and the delivery errors of
        :mod:`adapters.http_partner` when the service fails; none of them quote the number.
        """
        if not _PURPOSE.fullmatch(purpose):
            # A purpose is a code from our own list; free text could smuggle personal data into the log.
            raise ValidationFailed(
                "purpose must be a lower-case code", errors=[{"loc": ["purpose"], "type": "invalid"}]
            )
        kind, number = _identifier(personnummer)
        digits = re.sub(r"\D", "", blind_index)
        if not blind_index or number[2:] in digits:  # the 10-digit form is inside the 12-digit one
            raise ValueError("blind_index must be a keyed hash of the number, not the number itself")

        payload = json.dumps({"personnummer": number, "purpose": purpose}).encode()
        response = await self._http.request(
            "POST",
            self.path,
            idempotency_key=None,
            content=payload,
            content_type="application/json",
            accept=frozenset({404}),
        )
        answer = self._parse(response.status, response.body)
        record = LookupRecord(kind, blind_index, purpose, answer.result, self._clock())
        return self._result(answer, record)

    def _parse(self, status: int, body: bytes | None) -> _WireAnswer:
        if status == 404:
            return _WireAnswer(result="not_found")
        if body is None:
            raise PermanentDeliveryError("address lookup answer exceeded the size limit", result_code=status)
        try:
            return _WireAnswer.model_validate_json(body)
        except ValidationError:
            # pydantic's message would quote the answer, which holds names and addresses.
            raise PermanentDeliveryError(
                "address lookup answer does not match the expected shape", result_code=status
            ) from None

    @staticmethod
    def _result(answer: _WireAnswer, record: LookupRecord) -> LookupResult:
        if answer.result != "found":
            # Fail closed: no name or address, and no marketing, for anyone not plainly found.
            return LookupResult(answer.result, marketing_opt_out=True, record=record)
        person = answer.person
        if person is None:
            raise PermanentDeliveryError("address lookup answered 'found' without name and address")
        fields: dict[str, Any] = person.address.model_dump()
        return LookupResult(
            "found",
            marketing_opt_out=answer.marketing_opt_out is not False,
            record=record,
            name=PersonName(person.given_name, person.surname),
            address=LookupAddress(**fields),
        )
