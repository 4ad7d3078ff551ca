"""Whether a subject's restrictions (Art. 18) or objections (Art. 21) refuse a disclosure: pure.

A restriction with scope ``all`` stops every further disclosure of the subject; one naming a
recipient stops that recipient only.  An objection (scope ``marketing``) stops marketing, i.e. any
recipient of kind ``marketing`` or any disclosure for the purpose ``marketing``.  Lifted entries
(``lifted_at`` set) no longer count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.policy.schema import RecipientPolicy


def restriction_refusal(
    restrictions: Iterable[Mapping[str, Any]], recipient: RecipientPolicy, purpose: str
) -> str | None:
    for r in restrictions:
        if r.get("lifted_at"):
            continue
        scope = r["scope"]
        if r["kind"] == "restriction" and scope in ("all", recipient.recipient):
            return f"processing restricted (Art. 18) for {'all recipients' if scope == 'all' else scope}"
        if r["kind"] == "objection" and scope == "marketing" and (
            recipient.kind == "marketing" or purpose == "marketing"
        ):
            return "the subject objected to marketing (Art. 21)"
        if r["kind"] == "objection" and scope == recipient.recipient:
            return f"the subject objected to disclosures to {scope} (Art. 21)"
    return None
