"""Errors of the data-subject rights service.  Stable codes; messages never quote personal data."""

from __future__ import annotations

from gateway.errors import GatewayError, InputError, NotFound, ValidationFailed


class RequestNotFound(NotFound):
    code = "request_not_found"
    title = "No such data-subject request"


class RestrictionNotFound(NotFound):
    code = "restriction_not_found"
    title = "No such active restriction for this request's subject"


class RequestClosed(InputError):
    code = "request_closed"
    status = 409
    title = "The data-subject request is closed"


class SubjectNotIdentified(InputError):
    code = "subject_not_identified"
    status = 409
    title = "No data subject was found for this request"


class ExtensionRefused(InputError):
    code = "extension_refused"
    status = 409
    title = "The deadline cannot be extended (Art. 12(3))"


class InvalidScope(ValidationFailed):
    code = "invalid_scope"
    title = "The scope must be 'all', 'marketing' or a configured recipient"


class IdentifiersMissing(ValidationFailed):
    code = "identifiers_missing"
    title = "An e-mail address or a national ID is needed to find the data subject"


class RightsConfigError(GatewayError):
    code = "rights_config_invalid"
    status = 500
    title = "The rights configuration is invalid"
