"""The one error tree of Registrant Gateway.

Every error carries a stable machine-readable ``code`` (the ``code`` member of the RFC 9457
problem body), an HTTP ``status`` and a ``title``.  Messages are written by us, never copied
from input, so no error can carry personal data out of the gateway.

    GatewayError
    ├── InputError                 4xx: the caller sent something we refuse
    │   ├── ValidationFailed       422 (body field errors; field paths only, no values)
    │   ├── UnsupportedMediaType   415
    │   ├── PayloadTooLarge        413
    │   ├── MalformedBody          400
    │   ├── NotFound               404
    │   ├── IdempotencyConflict    409
    │   ├── Unauthenticated        401
    │   └── Forbidden              403
    ├── PolicyRefusal              a recipient must not get the data (fail closed)
    │   ├── TransferBlocked        no valid Chapter V basis
    │   ├── NoRecipientPolicy      TLD without a configured policy
    │   ├── RequiredFieldMissing   the registry needs a field the registrant lacks
    │   └── SubjectRestricted      Art. 18 restriction or Art. 21 objection in force
    ├── ConfigError                a policy/settings file is wrong; stops start-up
    └── DeliveryError              talking to a recipient failed
        ├── TransientDeliveryError retry (timeouts, dropped connections, EPP 2400/2500-range)
        └── PermanentDeliveryError never retried (EPP 2xxx client errors, unsupported protocol)

Retries (tenacity) target ``TransientDeliveryError`` only.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """RFC 9457 problem details; ``extra`` must hold no personal data (callers' duty)."""
        body: dict[str, Any] = {
            "type": f"https://registrant-gateway.invalid/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class InputError(GatewayError):
    code = "bad_request"
    status = 400
    title = "Bad request"


class ValidationFailed(InputError):
    code = "validation_failed"
    status = 422
    title = "The request body failed validation"


class UnsupportedMediaType(InputError):
    code = "unsupported_media_type"
    status = 415
    title = "Content-Type must be application/json"


class PayloadTooLarge(InputError):
    code = "payload_too_large"
    status = 413
    title = "Request body too large"


class MalformedBody(InputError):
    code = "malformed_body"
    status = 400
    title = "Request body is not valid JSON"


class MissingIdempotencyKey(InputError):
    code = "idempotency_key_required"
    status = 400
    title = "An Idempotency-Key header is required"


class NotFound(InputError):
    code = "not_found"
    status = 404
    title = "Not found"


class MethodNotAllowed(InputError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class IdempotencyConflict(InputError):
    code = "idempotency_conflict"
    status = 409
    title = "Idempotency-Key was used with a different request"


class Unauthenticated(InputError):
    code = "unauthenticated"
    status = 401
    title = "A valid bearer token is required"


class Forbidden(InputError):
    code = "forbidden"
    status = 403
    title = "Your role may not do this"


class PolicyRefusal(GatewayError):
    code = "policy_refusal"
    status = 422
    title = "Policy refuses this disclosure"


class TransferBlocked(PolicyRefusal):
    code = "transfer_blocked"
    title = "No valid GDPR Chapter V basis for this transfer"


class NoRecipientPolicy(PolicyRefusal):
    code = "no_recipient_policy"
    title = "No recipient policy is configured for this TLD"


class RequiredFieldMissing(PolicyRefusal):
    code = "required_field_missing"
    title = "The recipient requires a field the registrant lacks"


class SubjectRestricted(PolicyRefusal):
    code = "subject_restricted"
    title = "The data subject has restricted or objected to this processing"


class ConfigError(GatewayError):
    code = "config_invalid"
    status = 500
    title = "Configuration is invalid"


class DeliveryError(GatewayError):
    code = "delivery_failed"
    status = 502
    title = "Delivery to a recipient failed"

    def __init__(self, detail: str | None = None, *, result_code: int | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.result_code = result_code


class TransientDeliveryError(DeliveryError):
    code = "delivery_transient"
    title = "Recipient temporarily unavailable"


class PermanentDeliveryError(DeliveryError):
    code = "delivery_permanent"
    title = "Recipient refused the data"
