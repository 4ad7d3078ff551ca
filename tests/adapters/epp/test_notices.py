"""Poll messages classified into notices, from the frames the sandbox registry writes for each event.

The sandbox's objects are driven directly (no TLS: that is ``test_lifecycle_sandbox``), and every
message goes through the real path: the registry's <response> frame, checked against the official
schemas, parsed by the client's parser, then ``classify``.
"""

from __future__ import annotations

import pytest
from lxml import etree

from adapters.epp.notices import (
    ActionCompleted,
    ContactChanged,
    DomainDeleted,
    DomainExpired,
    Notice,
    TransferAway,
    TransferIn,
    Unknown,
    classify,
    transfer_status,
)
from adapters.epp.sandbox import FrameValidator
from adapters.epp.sandbox.objects import ObjectStore
from adapters.epp.types import DomainDelete, DomainTransfer, PollMessage, TransferData
from adapters.epp.xml import (
    NSMAP,
    build_domain_delete,
    build_domain_transfer,
    build_response,
    parse_document,
    parse_response,
)

LOSING = "registrar1"
GAINING = "registrar2"


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator()


@pytest.fixture
def store() -> ObjectStore:
    store = ObjectStore()
    store.seed_contact("HOLDER1", cl_id=LOSING)
    store.seed_domain("exempel.se", cl_id=LOSING, registrant="HOLDER1", auth_pw="d0main-Pw")
    return store


def _body(frame: bytes) -> tuple[str, etree._Element]:
    """A command frame's op (``None`` → "") and object element, as the sandbox's dispatcher sees them."""
    command = parse_document(frame).find("epp:command", NSMAP)
    assert command is not None
    verb = next(c for c in command if isinstance(c.tag, str))
    return verb.get("op") or "", next(c for c in verb if isinstance(c.tag, str))


def _transfer(store: ObjectStore, op: str, client_id: str, auth_pw: str | None = None) -> int:
    _, body = _body(build_domain_transfer(DomainTransfer("exempel.se", op, auth_pw=auth_pw), "t-transfer"))  # type: ignore[arg-type]
    return store.domain_transfer(op, body, None, client_id).code


def _messages(store: ObjectStore, client_id: str, validator: FrameValidator) -> list[PollMessage]:
    """Every queued message of ``client_id`` as the client parses it (acknowledging each)."""
    messages: list[PollMessage] = []
    for _ in range(20):
        out = store.poll("req", None, client_id)
        if out.code == 1300:
            return messages
        frame = build_response(out.code, "ack to dequeue", "t-poll", "SBX-1", res_data=out.res_data, msg_q=out.msg_q)
        assert validator.errors(frame) == []
        message = parse_response(frame).message
        assert message is not None
        messages.append(message)
        assert store.poll("ack", message.id, client_id).code == 1000
    raise AssertionError("poll queue did not drain")


def _notices(store: ObjectStore, client_id: str, validator: FrameValidator) -> list[Notice]:
    return [classify(m, our_client_id=client_id) for m in _messages(store, client_id, validator)]


def test_transfer_approved_by_the_losing_registrar(store: ObjectStore, validator: FrameValidator) -> None:
    assert _transfer(store, "request", GAINING, "d0main-Pw") == 1001
    assert _notices(store, LOSING, validator) == [TransferAway("exempel.se", "pending")]
    assert _notices(store, GAINING, validator) == []
    assert _transfer(store, "approve", LOSING) == 1000
    # Both registrars hear of the completed transfer: who holds what changed for each of them.
    assert _notices(store, GAINING, validator) == [TransferIn("exempel.se", "approved")]
    assert _notices(store, LOSING, validator) == [TransferAway("exempel.se", "approved")]


def test_transfer_approved_by_the_registry(store: ObjectStore, validator: FrameValidator) -> None:
    assert _transfer(store, "request", GAINING, "d0main-Pw") == 1001
    assert store.approve_pending_transfers() == ["exempel.se"]
    assert store.domains["exempel.se"]["cl_id"] == GAINING
    gaining = _messages(store, GAINING, validator)
    assert [m.text for m in gaining] == ["Transfer completed"]
    assert gaining[0].transfer is not None and gaining[0].transfer.tr_status == "serverApproved"
    assert classify(gaining[0], our_client_id=GAINING) == TransferIn("exempel.se", "approved")
    assert _notices(store, LOSING, validator) == [
        TransferAway("exempel.se", "pending"),
        TransferAway("exempel.se", "approved"),
    ]


def test_transfer_rejected_and_cancelled(store: ObjectStore, validator: FrameValidator) -> None:
    assert _transfer(store, "request", GAINING, "d0main-Pw") == 1001
    assert _transfer(store, "reject", LOSING) == 1000
    assert _transfer(store, "request", GAINING, "d0main-Pw") == 1001
    assert _transfer(store, "cancel", GAINING) == 1000
    assert _notices(store, GAINING, validator) == [TransferIn("exempel.se", "rejected")]
    assert _notices(store, LOSING, validator) == [
        TransferAway("exempel.se", "pending"),
        TransferAway("exempel.se", "pending"),
        TransferAway("exempel.se", "cancelled"),
    ]


def test_expiry_and_registry_deletion(store: ObjectStore, validator: FrameValidator) -> None:
    store.seed_domain("andra.se", cl_id=LOSING, registrant="HOLDER1")
    assert _transfer(store, "request", GAINING, "d0main-Pw") == 1001
    store.expire_domain("exempel.se")
    store.registry_delete_domain("andra.se")
    losing = _messages(store, LOSING, validator)
    assert [(m.res_kind, m.domain) for m in losing[1:]] == [
        ("domain:infData", "exempel.se"), ("domain:infData", "andra.se"),
    ]  # fmt: skip
    assert [classify(m, our_client_id=LOSING) for m in losing] == [
        TransferAway("exempel.se", "pending"),
        DomainExpired("exempel.se"),
        DomainDeleted("andra.se"),
    ]
    # The transfer pending on the expired domain ended with it.
    assert _notices(store, GAINING, validator) == [TransferIn("exempel.se", "cancelled")]
    assert "HOLDER1" in store.contacts  # contacts are objects of their own: they stay


def test_registry_changed_contact(store: ObjectStore, validator: FrameValidator) -> None:
    store.registry_update_contact("HOLDER1", street=["Validerad gata 1"], pc="111 23")
    (message,) = _messages(store, LOSING, validator)
    assert (message.res_kind, message.contact_id, message.domain) == ("contact:infData", "HOLDER1", None)
    assert classify(message, our_client_id=LOSING) == ContactChanged("HOLDER1")
    assert store.contacts["HOLDER1"]["postal_info"][0]["pc"] == "111 23"
    assert store.contacts["HOLDER1"]["up_id"] == "registry"
    with pytest.raises(ValueError):
        store.registry_update_contact("HOLDER1", national_id="x")
    with pytest.raises(LookupError):
        store.registry_update_contact("NOSUCH1", city="Lund")


def test_pending_delete_completed(store: ObjectStore, validator: FrameValidator) -> None:
    store.pending_delete = True
    _, body = _body(build_domain_delete(DomainDelete("exempel.se"), "t-delete"))
    assert store.domain_delete(body, None, LOSING).code == 1001
    assert "exempel.se" in store.domains
    assert store.purge_pending_deletes() == ["exempel.se"]
    (message,) = _messages(store, LOSING, validator)
    assert message.res_kind == "domain:panData" and message.pending_action is not None
    assert (message.pending_action.object_id, message.pending_action.ok) == ("exempel.se", True)
    assert message.pending_action.sv_trid
    assert classify(message, our_client_id=LOSING) == DomainDeleted("exempel.se")
    # A panData whose text does not say what was done is reported as such, for the gateway to match.
    silent = PollMessage(id="9", queued_at=None, text="Pending action completed", res_kind="domain:panData",
                         domain="exempel.se", pending_action=message.pending_action)  # fmt: skip
    assert classify(silent, our_client_id=LOSING) == ActionCompleted(
        "domain", "exempel.se", True, None, message.pending_action.sv_trid
    )


def test_what_cannot_be_classified_is_unknown() -> None:
    foreign = TransferData(name="exempel.se", tr_status="pending", re_id="someone", ac_id="another")
    assert classify(PollMessage("1", None, "Transfer requested", foreign), our_client_id=LOSING) == Unknown(
        "Transfer requested", None, None
    )
    odd = TransferData(name="exempel.se", tr_status="clientPondering", re_id=GAINING, ac_id=LOSING)
    assert isinstance(classify(PollMessage("2", None, "?", odd), our_client_id=GAINING), Unknown)
    # A warning about an expiry to come is not the expiry.
    warning = PollMessage("3", None, "Domain will expire in 30 days", res_kind="domain:infData", domain="exempel.se")
    assert classify(warning, our_client_id=LOSING) == Unknown("Domain will expire in 30 days", "exempel.se", None)
    assert classify(PollMessage("4", None, "Registry maintenance on Sunday"), our_client_id=LOSING) == Unknown(
        "Registry maintenance on Sunday"
    )


def test_client_ids_and_statuses_compare_as_registries_spell_them() -> None:
    upper = TransferData(name="exempel.se", tr_status="ServerApproved", re_id="REGISTRAR2", ac_id="REGISTRAR1")
    assert classify(PollMessage("1", None, None, upper), our_client_id=GAINING) == TransferIn("exempel.se", "approved")
    assert classify(PollMessage("1", None, None, upper), our_client_id=LOSING) == TransferAway("exempel.se", "approved")
    assert [transfer_status(s) for s in ("pending", "clientRejected", "serverCancelled", "other")] == [
        "pending", "rejected", "cancelled", None,
    ]  # fmt: skip
