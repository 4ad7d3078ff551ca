"""The one error tree of Registrant Gateway.

Every error carries a stable machine-readable ``code`` (the ``code`` member of the RFC 9457
problem body), an HTTP ``status`` and a ``title``.  Messages are written by us, never copied
from input, so no error can carry personal data out of the gateway.  A subclass states its code,
status and title as class arguments (``class X(InputError, code=..., title=...)``), so the whole
tree reads as a table; codes are part of the API and never change.

    GatewayError
    ├── InputError                     4xx: the caller sent something we refuse
    │   ├── ValidationFailed           422 body field errors (field paths only, no values)
    │   │   ├── InvalidScope           422 a restriction scope that is no recipient
    │   │   ├── IdentifiersMissing     422 a request with nothing to find the subject by
    │   │   ├── NotACandidate          422 confirming a subject that is no candidate of the request
    │   │   └── QueryInvalid           422 a query parameter (API) that its route's query model refuses
    │   ├── UnsupportedMediaType       415
    │   ├── PayloadTooLarge            413
    │   ├── MalformedBody              400
    │   │   └── BodyTooDeep            400 JSON nested deeper than any request of ours
    │   ├── MissingIdempotencyKey      400
    │   ├── BadFilter                  400 a staff page's filter value
    │   ├── BadInput                   400 a staff page's form value
    │   ├── ConfirmationMissing        422 erasure not confirmed on the page
    │   ├── ExplainInvalid             422 the explainer's sample registrant
    │   ├── NotFound                   404
    │   │   ├── RequestNotFound        404 no such data-subject request
    │   │   ├── RestrictionNotFound    404 no such active restriction
    │   │   ├── OutboxRowNotFound      404 no such outbox row (staff retry/cancel of a parked delivery)
    │   │   └── AccountNotFound        404 no such staff account
    │   ├── MethodNotAllowed           405
    │   ├── IdempotencyConflict        409
    │   ├── RequestClosed              409 the data-subject request is closed
    │   ├── SubjectNotIdentified       409 no subject found (or confirmed) for the request
    │   ├── SubjectNotConfirmed        409 staff have not yet confirmed whose records these are
    │   ├── ExtensionRefused           409 Art. 12(3) allows one extension
    │   ├── NotParked                  409 retry/cancel of an outbox row that is not parked
    │   ├── RegistrationNotActive      409 renew/delete/transfer out of a domain not delivered to its registry
    │   ├── RegistrationEnded          409 renew/delete/transfer out after our role ended
    │   ├── ControllerNotConfigured    409 an Art. 15 letter while the controller's details are placeholders
    │   ├── HeaderTooLarge             431 a header field beyond the limit
    │   ├── RequestLineTooLong         414 a request line (method, target) beyond the limit
    │   ├── Unauthenticated            401
    │   │   └── LoginFailed            401 a staff log-in with a wrong user name or password
    │   ├── Forbidden                  403
    │   ├── LoginThrottled             429 too many failed staff log-ins for this name or address
    │   ├── AccountConflict            409 a staff account name or OpenID Connect identity is taken
    │   ├── LastAdmin                  409 the last active admin cannot be disabled or demoted
    │   └── WeakPassword               422 a staff password too short (or too long)
    ├── PolicyRefusal                  422 a recipient must not get the data (fail closed)
    │   ├── TransferBlocked            no valid Chapter V basis
    │   ├── NoRecipientPolicy          TLD without a configured policy
    │   ├── RequiredFieldMissing       the registry needs a field the registrant lacks
    │   ├── SubjectRestricted          Art. 18 restriction or Art. 21 objection in force
    │   ├── NotEligible                the registry's own rules refuse this registrant (at acceptance)
    │   └── ProtocolNotSupported       the registry's protocol has no adapter (at acceptance)
    ├── SubjectErased                  410 the subject's data key was destroyed (Art. 17)
    │   └── SubjectRaced               409 another request made this holder's subject first: find it again
    ├── ConfigError                    500 a policy/settings file is wrong; stops start-up
    │   ├── RightsConfigError          500 the rights configuration (controller, retention)
    │   ├── LetterNotRenderable        500 an Art. 15 letter would carry an internal note
    │   └── RecipientUnrouted          500 a policy queues for a recipient with no endpoint, partner or agent
    ├── SandboxUnavailable             500 ``gateway run``: the registry sandbox process did not start
    ├── WorkerUnavailable              500 ``gateway worker`` stalled, or ``gateway run``'s did not start
    ├── LedgerInconsistent             409 an auditor's checkpoint is not in this ledger (rollback, fork)
    ├── LedgerCorrupt                  500 the disclosure ledger failed verification
    │   └── ProofUnavailable           500 the stored tree cannot produce the proof asked for
    ├── DecryptionFailed               500 wrong key, wrong associated data or tampering
    ├── KeyRingUnavailable             503 the KEK ring file cannot be read: no new data key is wrapped
    └── DeliveryError                  502 talking to a recipient failed
        ├── TransientDeliveryError     retry (timeouts, dropped connections, EPP 2400/2500-range)
        └── PermanentDeliveryError     never retried (EPP 2xxx client errors, unsupported protocol)

Protocol-level errors raised inside adapters, below the problem tree (an adapter turns them into a
``DeliveryError`` before they reach a service):

    EppXmlError                        a frame from the peer is not the EPP we expect
    └── ProtocolMismatch               no shared object service or extension
    FrameError                         an EPP length header no sane peer sends
    InvalidDeposit (ValueError)        an escrow deposit that cannot be opened

Retries (tenacity) target ``TransientDeliveryError`` only.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: Where the served docs describe each problem code (``gateway.http.api.docs``): a problem's ``type`` is
#: this path and its code, a URI reference resolved against the request's own URI.
PROBLEM_DOCS = "/docs/problems/"


class GatewayError(Exception):
    """Something went wrong inside the gateway; the request was not processed."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init_subclass__(
        cls, *, code: str | None = None, status: int | None = None, title: str | None = None, **kw: Any
    ) -> None:
        super().__init_subclass__(**kw)
        if code is not None:
            cls.code = code
        if status is not None:
            cls.status = status
        if title is not None:
            cls.title = title

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """RFC 9457 problem details; ``extra`` must hold no personal data (callers' duty)."""
        body: dict[str, Any] = {
            "type": f"{PROBLEM_DOCS}{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


# -- the caller's input ------------------------------------------------------------------------------


class InputError(GatewayError, code="bad_request", status=400, title="Bad request"):
    """Anything the caller can fix; never retried by us."""


class ValidationFailed(InputError, code="validation_failed", status=422, title="The request body failed validation"):
    """Carries ``errors``: field paths and rule names, never the rejected values."""


class InvalidScope(ValidationFailed, code="invalid_scope",
                   title="The scope must be 'all', 'marketing' or a configured recipient"):
    """A restriction or objection must name something the gateway can refuse."""


class IdentifiersMissing(ValidationFailed, code="identifiers_missing",
                         title="An e-mail address, national ID, phone number, contact id or name and address "
                               "is needed to find the data subject"):
    """Without an identifier the blind index cannot find anyone."""


class NotACandidate(ValidationFailed, code="not_a_candidate",
                    title="Only candidate records of this request can be confirmed"):
    """A subject id that no identifier of the request matched: confirming it would let a subject id
    learnt elsewhere bring a stranger's data into this person's request."""


class QueryInvalid(ValidationFailed, code="query_invalid", title="A query parameter is not valid"):
    """A query string that its route's model (``gateway.http.query``) refuses; ``errors`` holds
    ``["query", name]`` paths and rule names, never the value."""


class UnsupportedMediaType(InputError, code="unsupported_media_type", status=415,
                           title="Content-Type must be application/json"):
    """Bodies are JSON only, so nothing is guessed from a form post."""


class PayloadTooLarge(InputError, code="payload_too_large", status=413, title="Request body too large"):
    """Checked before the body is parsed."""


class MalformedBody(InputError, code="malformed_body", title="Request body is not valid JSON"):
    """The body could not be parsed at all."""


class BodyTooDeep(MalformedBody, code="body_too_deep", title="Request body is nested too deeply"):
    """No request of ours nests deeper than a few levels; refusing early keeps the parser (and any
    recursive validation after it) from exhausting the stack."""


class MissingIdempotencyKey(InputError, code="idempotency_key_required",
                            title="An Idempotency-Key header is required"):
    """Registrations are replayed by key, so a retried call never registers twice."""


class BadFilter(InputError, code="bad_filter", title="A filter value is not valid"):
    """A staff page's filter; the page re-renders with the message."""


class BadInput(InputError, code="bad_form_value", title="A form value is not valid"):
    """A staff page's form value."""


class ConfirmationMissing(InputError, code="confirmation_missing", status=422, title="Erasure was not confirmed"):
    """Erasure cannot be undone, so the page asks for an explicit confirmation."""


class ExplainInvalid(InputError, code="explain_invalid", status=422, title="The sample registrant is not valid"):
    """The explainer's sample registrant failed the same validation as a registration."""


class NotFound(InputError, code="not_found", status=404, title="Not found"):
    """Also what another client's object looks like, so ids leak nothing."""


class RequestNotFound(NotFound, code="request_not_found", title="No such data-subject request"):
    """Unknown request id."""


class RestrictionNotFound(NotFound, code="restriction_not_found",
                          title="No such active restriction for this request's subject"):
    """Lifting something that is not in force."""


class MethodNotAllowed(InputError, code="method_not_allowed", status=405, title="Method not allowed"):
    """The path exists, the method does not."""


class IdempotencyConflict(InputError, code="idempotency_conflict", status=409,
                          title="Idempotency-Key was used with a different request"):
    """The same key with another body: refusing is safer than guessing which one was meant."""


class RequestClosed(InputError, code="request_closed", status=409, title="The data-subject request is closed"):
    """A closed request keeps its record; new actions need a new request."""


class SubjectNotIdentified(InputError, code="subject_not_identified", status=409,
                           title="No data subject was found for this request"):
    """The action needs a subject and none was found, or staff confirmed that no candidate is the person."""


class SubjectNotConfirmed(InputError, code="subject_not_confirmed", status=409,
                          title="Confirm which candidate records are the data subject's first"):
    """Identifiers only list candidates (a family e-mail address matches strangers); extract, erasure,
    restriction, objection and rectification act on the records staff confirmed, never before."""


class ExtensionRefused(InputError, code="extension_refused", status=409,
                       title="The deadline cannot be extended (Art. 12(3))"):
    """Art. 12(3) allows one extension, with reasons."""


class HeaderTooLarge(InputError, code="header_too_large", status=431,
                     title="Request header fields too large"):
    """A header field beyond the limit; answered before any handler runs, and neither quoted nor
    logged (it may carry a credential)."""


class RequestLineTooLong(InputError, code="uri_too_long", status=414, title="Request line too long"):
    """The method and target beyond the limit; answered before any handler runs, never quoted."""


class Unauthenticated(InputError, code="unauthenticated", status=401, title="A valid bearer token is required"):
    """No or unknown credentials."""


class Forbidden(InputError, code="forbidden", status=403, title="Your role may not do this"):
    """Known credentials, wrong role."""


class OutboxRowNotFound(NotFound, code="outbox_row_not_found", title="No such outbox row"):
    """Unknown outbox row id (staff retry or cancel of a parked delivery)."""


class NotParked(InputError, code="outbox_row_not_parked", status=409,
                title="The outbox row is not parked (waiting for staff)"):
    """Only a parked row (``needs_attention``) can be retried or cancelled: one still pending or in flight
    belongs to the delivery worker, and a delivered or cancelled one is final."""


class RegistrationNotActive(InputError, code="registration_not_active", status=409,
                            title="The domain is not (yet) registered through us"):
    """Renewal, deletion and transfer out act on a domain the registry holds for us: a registration still
    being delivered, failed, blocked or cancelled has nothing there to act on."""


class RegistrationEnded(InputError, code="registration_ended", status=409,
                        title="Our role as this domain's registrar has ended"):
    """The registration was deleted, transferred out or expired (its ``end_reason`` is in the problem): a
    second deletion or transfer out, or a renewal after the end, changes nothing and is refused."""


class ControllerNotConfigured(InputError, code="controller_not_configured", status=409,
                              title="The controller's details are not configured; no letter can be made"):
    """An Art. 15 letter (HTML or PDF) names the controller; while ``controller.yaml`` still holds the
    shipped placeholders (``placeholder: true``, bracketed values, ``.invalid`` addresses) the letter is
    refused whole, the detail naming the settings to set.  The JSON extract is not a letter and is made."""


class LoginFailed(Unauthenticated, code="login_failed", title="The user name or password is not right"):
    """A staff log-in that failed: unknown name, wrong password or a disabled account alike, so the answer
    never tells whether an account exists."""


class LoginThrottled(InputError, code="login_throttled", status=429, title="Too many failed log-ins"):
    """Too many failed log-ins for this user name or from this address within the window; nothing is
    checked until failures age out of it (the answer is the same whether the account exists)."""


class AccountConflict(InputError, code="account_conflict", status=409, title="That account already exists"):
    """A staff account's name, or the OpenID Connect identity linked to it, belongs to another account."""


class AccountNotFound(NotFound, code="account_not_found", title="No such staff account"):
    """The staff account named does not exist."""


class LastAdmin(InputError, code="last_admin", status=409, title="The last admin cannot be removed"):
    """Disabling or demoting the last active admin account would leave nobody to manage accounts (the CLI's
    ``gateway accounts create-admin --force`` is the way back in)."""


class WeakPassword(InputError, code="weak_password", status=422, title="The password is not acceptable"):
    """A staff password must be at least 12 characters (and at most 1024)."""


# -- policy: fail closed ------------------------------------------------------------------------------


class PolicyRefusal(GatewayError, code="policy_refusal", status=422, title="Policy refuses this disclosure"):
    """A recipient must not get the data; nothing is sent and the refusal is logged."""


class TransferBlocked(PolicyRefusal, code="transfer_blocked", title="No valid GDPR Chapter V basis for this transfer"):
    """No adequacy decision in force, no safeguard, no derogation."""


class NoRecipientPolicy(PolicyRefusal, code="no_recipient_policy",
                        title="No recipient policy is configured for this TLD"):
    """Default deny: an unconfigured TLD gets nothing."""


class RequiredFieldMissing(PolicyRefusal, code="required_field_missing",
                           title="The recipient requires a field the registrant lacks"):
    """E.g. a Swedish ID number for .se."""


class SubjectRestricted(PolicyRefusal, code="subject_restricted",
                        title="The data subject has restricted or objected to this processing"):
    """Art. 18 restriction or Art. 21 objection in force."""


class NotEligible(PolicyRefusal, code="registry_ineligible",
                  title="The registry does not accept this registrant for this TLD"):
    """A rule of the registry's own (``eligibility`` in its policy file) that the registrant does not meet,
    e.g. .us without nexus, .eu for a person neither resident in the EU/EEA nor an EU citizen.  Refused at
    acceptance, before anything is stored: the registry would refuse it anyway.  ``errors`` names the
    request's field path and the rule's reason (from the policy file), never the value."""


class ProtocolNotSupported(PolicyRefusal, code="protocol_not_supported",
                           title="The registry's protocol has no adapter in this gateway"):
    """E.g. .de (DENIC speaks RRI, not EPP): accepting it would plan fields as sent that cannot be."""


# -- state of the data ------------------------------------------------------------------------------


class SubjectErased(GatewayError, code="subject_erased", status=410,
                    title="The subject's data key was destroyed; values cannot be read"):
    """Crypto-shredding is final: the values are gone, the entries remain."""


class SubjectRaced(SubjectErased, code="subject_raced", status=409,
                   title="Another request created this holder's subject first; try again"):
    """Raised by ``accept`` (writing nothing) when the new subject's strong identifier already names a live
    subject: a concurrent first registration of the same holder committed in between.  A subclass of
    ``SubjectErased`` so the registration service's retry loop finds that holder and files under it."""


class ConfigError(GatewayError, code="config_invalid", title="Configuration is invalid"):
    """Stops start-up with ``file:line: key.path: reason``."""


class RightsConfigError(ConfigError, code="rights_config_invalid", title="The rights configuration is invalid"):
    """The controller or retention file."""


class LetterNotRenderable(ConfigError, code="letter_not_renderable",
                          title="The letter would carry an internal note and was not made"):
    """A last check on a rendered Art. 15 letter: a staff note from configuration ("UNCONFIRMED", a file
    name) must never reach a data subject; the staff extract page lists what to fix."""


class RecipientUnrouted(ConfigError, code="recipient_unrouted", title="A recipient has nowhere to be delivered"):
    """A policy queues data for a recipient this process cannot reach (no EPP endpoint, partner or escrow
    agent configured): its rows would wait forever, so start-up stops and names what to configure."""


class SandboxUnavailable(GatewayError, code="sandbox_unavailable", title="The local registry sandbox did not start"):
    """``gateway run``: the sandbox process exited or did not listen in time (its log says why)."""


class WorkerUnavailable(GatewayError, code="worker_unavailable", title="The delivery worker stopped or did not start"):
    """``gateway worker``: its delivery loop crashed or stalled (exit 1, so a supervisor starts a fresh
    one); ``gateway run``: its first worker process did not say it was delivering in time."""


class LedgerCorrupt(GatewayError, code="ledger_corrupt", title="The disclosure ledger failed verification"):
    """Names the first entry whose hash, ciphertext or checkpoint does not match."""


class LedgerInconsistent(GatewayError, code="ledger_inconsistent", status=409,
                         title="The checkpoint is not consistent with this ledger"):
    """A refutation, not a failure to answer: the tree this gateway holds at the auditor's size has another
    root, or is smaller than a tree it once signed.  Either history was rewritten (a rollback, a restored
    backup, a fork) or the checkpoint is not ours; the problem carries the sizes and the gateway's own root
    at that size (hashes only, never personal data) so the auditor can keep it as evidence."""


class ProofUnavailable(LedgerCorrupt, code="proof_unavailable", title="The ledger cannot produce this proof"):
    """The stored tree lacks a node the proof needs, or the proof it yields does not verify against its own
    head: the gateway says so rather than serve a proof that proves nothing."""


class DecryptionFailed(GatewayError, code="decryption_failed", title="Stored data could not be decrypted"):
    """Wrong key, wrong associated data, tampered or truncated blob: all look the same.

    One error for all of them on purpose: telling a caller *why* a ciphertext failed helps an
    attacker more than an operator, and the message never includes data.
    """


class KeyRingUnavailable(GatewayError, code="key_ring_unavailable", status=503,
                         title="The key-encryption key ring cannot be read; nothing was stored"):
    """A new data key is wrapped only under the active key of the ring file as it is now; fail closed.

    Before wrapping, the gateway re-reads its key ring file.  If the file is missing, unreadable or
    invalid (a rotation gone wrong, a broken deployment), wrapping with the copy in memory could use a key
    that was retired meanwhile, and that subject's data would be unreadable for good after the next
    restart; the request is refused instead and may be retried once the file is fixed.
    """


# -- delivery ---------------------------------------------------------------------------------------


class DeliveryError(GatewayError, code="delivery_failed", status=502, title="Delivery to a recipient failed"):
    """Talking to a recipient failed; ``result_code`` is the recipient's own code, if any."""

    def __init__(self, detail: str | None = None, *, result_code: int | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.result_code = result_code


class TransientDeliveryError(DeliveryError, code="delivery_transient", title="Recipient temporarily unavailable"):
    """Retried with backoff: the recipient may take it later."""


class PermanentDeliveryError(DeliveryError, code="delivery_permanent", title="Recipient refused the data"):
    """Never retried: sending the same again gets the same answer."""


class RegistryUnreachable(TransientDeliveryError, code="registry_unreachable", title="Recipient could not be reached"):
    """The connection failed (refused, reset, timed out, TLS failure, no greeting), not the recipient's
    answer: retried like any transient error, and counted by the circuit breaker of the recipient's endpoint
    (a registry that answers, even with an error code, is reachable)."""


# -- protocol level, inside adapters ------------------------------------------------------------------


class EppXmlError(Exception):
    """A frame from the peer is not the EPP we expect; messages never quote the frame itself."""


class ProtocolMismatch(EppXmlError):
    """Client and server share no usable object service, or a needed extension is not offered."""


class FrameError(Exception):
    """The peer sent a length header no sane EPP peer sends; the stream can no longer be trusted."""


class InvalidDeposit(ValueError):
    """A sealed deposit that cannot be opened: wrong key, tampering, truncation or unknown version."""
