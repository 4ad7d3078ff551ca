"""Data-subject rights: requests and their deadlines, Art. 15 extracts (verifiable offline), restriction
and objection, erasure, the Art. 30 record, the transfer explainer and the retention purge."""

from gateway.policy.restrictions import restriction_refusal
from gateway.rights.deadlines import add_months, deadline_for, extended_deadline, extension_refusal
from gateway.rights.extract import verify_extract
from gateway.rights.service import REQUEST_KINDS, RequestKind, RightsService

__all__ = [
    "REQUEST_KINDS",
    "RequestKind",
    "RightsService",
    "add_months",
    "deadline_for",
    "extended_deadline",
    "extension_refusal",
    "restriction_refusal",
    "verify_extract",
]
