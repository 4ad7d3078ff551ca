"""What an outbox row carries, typed: one frozen value per kind of delivery, its JSON form and digest.

An outbox row holds its payload sealed under the subject's data key, as JSON, and the disclosure entry
of every attempt quotes the payload's digest.  The JSON form of each type is therefore a stored format:
it stays exactly what earlier versions wrote (the ``protocol`` key included), so that rows queued
before an upgrade still decode and a payload's digest never changes.  ``decode`` is the one way back
from that JSON; the delivery worker then dispatches on the type, never on a protocol string.  A
registration's EPP row is an ``EppOrder``, which the worker first builds into the ``EppRegistration``
or ``EppTransferIn`` that is sent (and digested into the entries); rows of those two types queued by
earlier versions are sent as stored.

Pure: building, encoding and digesting a payload does no I/O; sealing and sending happen elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

import orjson

from adapters.epp.types import ContactUpdate, RegistrationCommands
from gateway.outbox.epp import (
    RegistrationOrder,
    commands_from_json,
    commands_to_json,
    contact_update_from_json,
    contact_update_to_json,
    order_from_json,
    order_to_json,
)


def canonical_json(data: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8 unescaped.  The same bytes as
    ``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()`` for what
    payloads hold (text, integers, booleans, null, lists and objects with text keys; the stored digests
    in ``tests/outbox`` hold it to that), from a C encoder."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def json_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 over canonical JSON (sorted keys, no whitespace, UTF-8): equal content gives an equal
    digest however the mapping was built, so a digest computed at queueing time still matches later."""
    return "sha256:" + hashlib.sha256(canonical_json(data)).hexdigest()


def plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Released values in their JSON form (street lines as a list, not a tuple): what is compared with
    the held values, sealed and digested is then exactly what decodes back from storage."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def outbox_aad(reg_id: str, recipient: str, change_id: str = "") -> str:
    """Binds a sealed outbox payload to its row, so a blob cannot be replayed into another one."""
    return f"outbox:{reg_id}:{recipient}" + (f":{change_id}" if change_id else "")


class _Digested:
    """A payload's digest is the digest of its JSON form: exactly what the adapter will be given."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def digest(self) -> str:
        return json_digest(self.to_json())


@dataclass(frozen=True)
class EppRegistration(_Digested):
    """A registration at an EPP registry: the contact creates (none for a thin registry), then the
    domain create, in the order the registry needs them."""

    protocol: ClassVar[Literal["epp"]] = "epp"
    commands: RegistrationCommands

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "commands": commands_to_json(self.commands)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EppRegistration:
        return cls(commands_from_json(data["commands"]))


@dataclass(frozen=True)
class EppOrder(_Digested):
    """A registration (or, with ``auth_pw``, a transfer in) at an EPP registry, as accepted: the order its
    commands are built from by the delivery worker when it sends them (``gateway.outbox.epp.commands_for``),
    with the released values sealed beside it.  What is sent, and digested into the disclosure entries, is
    the ``EppRegistration`` or ``EppTransferIn`` built then (``sendable``); this row's own digest is its
    order's.  Rows queued before orders (those two types, commands built) still decode and go as stored."""

    protocol: ClassVar[Literal["epp-order"]] = "epp-order"
    order: RegistrationOrder
    #: a transfer in: the holder's auth code for ``domain:transfer`` (a secret: sealed, never logged)
    auth_pw: str | None = None

    def to_json(self) -> dict[str, Any]:
        transfer = {} if self.auth_pw is None else {"auth_pw": self.auth_pw}
        return {"protocol": self.protocol, "order": order_to_json(self.order), **transfer}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EppOrder:
        return cls(order_from_json(data["order"]), auth_pw=data.get("auth_pw"))

    def sendable(self, commands: RegistrationCommands) -> EppRegistration | EppTransferIn:
        """The payload that goes, once its commands are built."""
        if self.auth_pw is None:
            return EppRegistration(commands)
        return EppTransferIn(auth_pw=self.auth_pw, years=self.order.period_years, commands=commands)


@dataclass(frozen=True)
class EppContactUpdate(_Digested):
    """A ``<contact:update>`` of the subject's contact at a registry: only changed, released fields."""

    protocol: ClassVar[Literal["epp-update"]] = "epp-update"
    update: ContactUpdate

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "contact_update": contact_update_to_json(self.update)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EppContactUpdate:
        return cls(contact_update_from_json(data["contact_update"]))


@dataclass(frozen=True)
class HttpsPost(_Digested):
    """A JSON body posted to a partner's ``path``.

    ``idempotency_key`` is None for a registration's post, whose key the worker derives from the row
    (registration and recipient); a change names its own, since one registration has many changes.
    None is left out of the JSON form, as it always was, so the digests of stored rows hold.
    """

    protocol: ClassVar[Literal["https"]] = "https"
    path: str
    body: Mapping[str, Any]
    idempotency_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        key = {} if self.idempotency_key is None else {"idempotency_key": self.idempotency_key}
        return {"protocol": self.protocol, "path": self.path, **key, "body": dict(self.body)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HttpsPost:
        return cls(path=data["path"], body=data["body"], idempotency_key=data.get("idempotency_key"))


@dataclass(frozen=True)
class DomainRecord(_Digested):
    """A domain's whole released holder record, for a recipient that takes records, not commands.

    The escrow agent's rows (``protocol`` "escrow") are these: the escrow job folds them into its
    next deposit.  A registration for a registry whose protocol the gateway cannot speak yet (RRI at
    .de) is queued in the same form under that protocol's name, so the row exists, is refused at
    delivery and logged, instead of vanishing.  A change carries no ``nameservers`` or ``expires``
    (None: left out of the JSON form; the escrow job keeps the ones it had), a registration both.
    """

    domain: str
    tld: str
    data: Mapping[str, Any]
    nameservers: tuple[str, ...] | None = None
    expires: str | None = None  # ISO date the registration is expected to run to
    protocol: str = "escrow"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol, "domain": self.domain, "tld": self.tld,
                               "data": dict(self.data)}
        if self.nameservers is not None:
            out["nameservers"] = list(self.nameservers)
        if self.expires is not None:
            out["expires"] = self.expires
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DomainRecord:
        ns = data.get("nameservers")
        return cls(domain=data["domain"], tld=data["tld"], data=data["data"],
                   nameservers=None if ns is None else tuple(ns), expires=data.get("expires"),
                   protocol=data["protocol"])


@dataclass(frozen=True)
class EppTransferIn(_Digested):
    """A domain transferred to us: ``domain:transfer op="request"`` with the holder's auth code, then, once
    the registry has approved it, the contacts the registry needs (created, or reused) and a
    ``domain:update`` that points the domain at them; ``commands`` holds those contacts and the domain's
    wanted registrant and roles (its ``domain`` is never created)."""

    protocol: ClassVar[Literal["epp-transfer"]] = "epp-transfer"
    auth_pw: str
    years: int
    commands: RegistrationCommands

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "auth_pw": self.auth_pw, "years": self.years,
                "commands": commands_to_json(self.commands)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EppTransferIn:
        return cls(auth_pw=data["auth_pw"], years=int(data["years"]), commands=commands_from_json(data["commands"]))


@dataclass(frozen=True)
class EppRenew(_Digested):
    """``domain:renew`` for ``years`` (the current expiry is read from the registry first): no personal data."""

    protocol: ClassVar[Literal["epp-renew"]] = "epp-renew"
    domain: str
    years: int

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "domain": self.domain, "years": self.years}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EppRenew:
        return cls(domain=data["domain"], years=int(data["years"]))


@dataclass(frozen=True)
class EppRelease(_Digested):
    """The end of our role for a domain at its registry: ``domain:delete`` when ``delete_domain`` (a deletion),
    then ``contact:delete`` for every contact of the registration that no other domain of ours at that
    registry still uses (decided when sent, from the log).  A transfer away or an expiry releases the
    contacts only.  Carries no personal data."""

    protocol: ClassVar[Literal["epp-release"]] = "epp-release"
    domain: str
    delete_domain: bool

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "domain": self.domain, "delete_domain": self.delete_domain}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EppRelease:
        return cls(domain=data["domain"], delete_domain=bool(data["delete_domain"]))


#: Payloads that carry no personal data: queued unsealed (``subject_id`` NULL), so they still go, and are
#: logged, after the holder's data key was destroyed (a domain can be deleted after its holder's erasure).
UNSEALED_PROTOCOLS = frozenset({EppRenew.protocol, EppRelease.protocol})

#: What the delivery worker dispatches on: every payload but an order, which it first builds into one of these.
Sendable: TypeAlias = (
    EppRegistration | EppContactUpdate | HttpsPost | DomainRecord | EppTransferIn | EppRenew | EppRelease
)
OutboxPayload: TypeAlias = Sendable | EppOrder

_DECODERS: dict[str, Callable[[Mapping[str, Any]], OutboxPayload]] = {
    EppRegistration.protocol: EppRegistration.from_json,
    EppContactUpdate.protocol: EppContactUpdate.from_json,
    HttpsPost.protocol: HttpsPost.from_json,
    EppTransferIn.protocol: EppTransferIn.from_json,
    EppRenew.protocol: EppRenew.from_json,
    EppRelease.protocol: EppRelease.from_json,
    EppOrder.protocol: EppOrder.from_json,
}


def decode(data: Mapping[str, Any]) -> OutboxPayload:
    """The payload a stored JSON form describes; any protocol without a command form of its own
    ("escrow", "rri") was queued as a ``DomainRecord``."""
    return _DECODERS.get(data["protocol"], DomainRecord.from_json)(data)


@dataclass(frozen=True)
class OutboxContent:
    """What an outbox row seals: the payload, and the released values it carries (sealed again into
    the disclosure entry once they have been sent).  Its JSON form ``{"payload": ..., "values": ...}``
    is the format of every stored row."""

    payload: OutboxPayload
    values: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"payload": self.payload.to_json(), "values": self.values}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutboxContent:
        return cls(decode(data["payload"]), data["values"])

    def encoded(self) -> tuple[bytes, str]:
        """The JSON form as bytes (what is sealed), and the payload's digest, with the payload encoded
        once for both: the digest is over the payload's canonical bytes, which are spliced into the
        content's (the same bytes as ``canonical_json(self.to_json())``: keys sorted, "payload" first)."""
        payload = canonical_json(self.payload.to_json())
        digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        return b'{"payload":' + payload + b',"values":' + canonical_json(self.values) + b"}", digest
