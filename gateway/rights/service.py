"""Data-subject rights (GDPR Art. 12-22, 30) over the disclosure ledger.

Every step taken on a request is a request event holding ids, kinds and counts only, never a
value: the request log must not become a second copy of the personal data it is about.  Reading
values for an extract is itself logged (``ledger.record_access``).

Who the request is about is decided by staff, not by the blind index.  Opening a request lists
*candidate* records: every subject any identifier given matches (a strong national ID, the number
alone, e-mail, phone, name and postal address, a registry contact id), each with how it matched.
Nothing is acted on until staff confirm which candidates are the person's
(:meth:`RightsService.confirm_subjects`); extract, erasure, restriction, objection, lifting and
rectification then act on exactly the confirmed subjects and answer ``subject_not_confirmed`` (409)
before.  A family e-mail address or a shared phone line can list a stranger as a candidate, but it
cannot put the stranger's data in an extract or destroy the stranger's key.

When exactly one candidate matched by a strong identifier (national ID with scheme and issuing
country), it is marked ``suggested`` and the staff page pre-ticks it; confirming it is still an
explicit staff step, because the same page may show weaker matches staff want to add or reject.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast, get_args

import phonenumbers
import structlog

from gateway.clock import iso, utcnow
from gateway.errors import (
    ExtensionRefused,
    IdentifiersMissing,
    InvalidScope,
    NotACandidate,
    NotFound,
    RequestClosed,
    RequestNotFound,
    RestrictionNotFound,
    SubjectErased,
    SubjectNotConfirmed,
    SubjectNotIdentified,
    ValidationFailed,
)
from gateway.identity import name_address_key, strong_key
from gateway.ledger.checkpoint import SignedCheckpoint
from gateway.ledger.entry import DisclosureEntry
from gateway.models import (
    SCHEME_COUNTRY,
    IdScheme,
    NationalId,
    Registrant,
    RegistrationRequest,
    UsNexus,
    normalise_national_id,
    to_a_label,
)
from gateway.policy import eligibility
from gateway.policy.classify import classify_transfer
from gateway.policy.loader import PolicySet
from gateway.policy.schema import RecipientPolicy, TransferCategory
from gateway.rights import pdf, render, texts
from gateway.rights.casework import (
    NOTE_LIMIT,
    REMINDER_DAYS,
    CurrentValues,
    DeadlineView,
    deadline_view,
    read_current_values,
    reminders,
)
from gateway.rights.config import (
    ControllerConfig,
    RetentionConfig,
    default_config_dir,
    load_controller,
    load_retention,
)
from gateway.rights.deadlines import days_left, deadline_for, extended_deadline, extension_refusal
from gateway.rights.extract import FORMAT, FORMAT_VERSION, present_entry, values_note
from gateway.rights.recipients import REACHED, PartnerEndpoints, art19_notices, push_rectification, request_deletions
from gateway.rights.texts import (
    AUTOMATED,
    BUILTIN_PURPOSES,
    HOLDINGS,
    LANGS,
    SOURCE,
    VERIFY,
    Lang,
    country_name,
    rights,
    tr,
    untranslated,
)
from gateway.services.changes import ChangeService
from gateway.services.holdings import Holdings, RegistrationFacts, registration_facts, subject_holdings
from gateway.services.holdings import holdings as compute_holdings
from gateway.services.holdings import load as load_holdings
from gateway.services.ledger import Ledger
from gateway.services.registrations import plan_registration
from gateway.store.accounts import AccountStore, StaffAccount
from gateway.store.base import DisclosureFilter, Store
from gateway.store.requests_extra import RequestExtraStore

log = structlog.get_logger("gateway.rights")

RequestKind = Literal["access", "rectification", "erasure", "restriction", "objection"]
REQUEST_KINDS: tuple[str, ...] = get_args(RequestKind)
IDENTIFIER_KEYS = frozenset({"email", "national_id", "national_id_scheme", "contact_id", "domain", "phone", "name",
                             "street", "postal_code", "country"})
#: How a candidate matched, strongest first: a national ID with its scheme and issuing country
#: (``strong_id``), the number alone, a registry contact id, then the weak ones, then the domain, which
#: only corroborates a record found otherwise (there is no index by domain).
MatchBy = Literal["strong_id", "national_id", "contact_id", "email", "phone", "name_address", "domain"]
MATCH_ORDER: tuple[str, ...] = get_args(MatchBy)
#: At most this many candidates are kept on a request (strongest matches first); a switchboard number
#: shared by hundreds of holders must not turn a request into a listing of all of them.
MAX_CANDIDATES = 50
_ACTIVE_REGISTRATION = frozenset({"accepted", "delivering", "delivered"})
_PAGE = 1000
#: Outbox states of a transfer not made yet: listed in the extract as a planned recipient (Art. 15(1)(c)).
_WAITING = frozenset({"pending", "in_flight"})
#: how often (entries scanned) ``retention`` reports progress
_PROGRESS_EVERY = 1000

SECURITY_MEASURES: tuple[dict[str, str], ...] = (
    {"measure": "Encryption of disclosed values at rest",
     "detail": "Values each disclosure sent are sealed with AES-256-GCM under a random per-subject data key; "
               "the associated data binds each ciphertext to its entry. Data keys are wrapped (AES-256-GCM) "
               "under a key-encryption key ring that can be rotated without touching the log."},
    {"measure": "Erasure by crypto-shredding",
     "detail": "Art. 17 erasure destroys the subject's wrapped data key; every value sealed under it becomes "
               "unreadable while the log's integrity proofs keep verifying."},
    {"measure": "Tamper-evident disclosure log",
     "detail": "Every disclosure entry is a leaf of an append-only RFC 9162 Merkle tree written in the same "
               "database transaction as the entry; Ed25519-signed checkpoints, inclusion and consistency proofs "
               "let anyone verify it; database triggers forbid updating or deleting entries."},
    {"measure": "Blind indexes",
     "detail": "Subjects are found by HMAC-SHA256 digests of normalised identifiers (national ID with its scheme "
               "and country, the number alone, e-mail, phone, name and postal address) under a separate key; no "
               "identifier is stored in clear for lookup. A data-subject request lists the records found as "
               "candidates; staff confirm which are the person's before anything is read or erased."},
    {"measure": "Transport security",
     "detail": "EPP to registries over TLS with client certificates (RFC 5734); partners over HTTPS."},
    {"measure": "Access control and accountability",
     "detail": "Bearer tokens stored only as SHA-256 hashes and compared in constant time; roles (ordering, "
               "privacy, auditor); every staff read of personal data is written to an append-only access log."},
    {"measure": "Data minimisation and transfer control",
     "detail": "Default-deny per-recipient field policies; every transfer classified under GDPR Chapter V at the "
               "transfer time and blocked (fail closed) without a valid basis; restrictions and objections "
               "refuse further disclosures."},
    {"measure": "Storage limitation",
     "detail": "A retention job deletes disclosed values after their purpose's period (config/retention.yaml)."},
    {"measure": "No personal data in logs or errors",
     "detail": "Application logs and error responses carry ids, codes and counts only."},
)


def _text(name: str, value: Any, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationFailed(f"'{name}' must be a non-empty string of at most {limit} characters",
                               errors=[{"loc": [name], "type": "string_type"}])
    return value.strip()


def _scope_error(name: str) -> InvalidScope:
    return InvalidScope(errors=[{"loc": [name], "type": "scope"}])


def _parse_time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def national_id_forms(value: str, scheme: str | None) -> list[str]:
    """The canonical forms a given national ID may be stored under (registration normalises by scheme).

    Without a scheme: the value as given and its canonical form under every scheme it is valid for.
    Every scheme, not only the Swedish personal ones, because people quote their numbers in other
    spellings than the ordering system sent: a Finnish Y-tunnus as its VAT number ``FI20774740``
    is stored as ``2077474-0``."""
    if scheme is not None:
        try:
            return [normalise_national_id(IdScheme(scheme), value)]
        except ValueError:
            raise ValidationFailed("national_id is not valid for national_id_scheme",
                                   errors=[{"loc": ["identifiers", "national_id"], "type": "value_error"}]) from None
    forms = [value]
    for guess in IdScheme:
        try:
            canonical = normalise_national_id(guess, value)
        except ValueError:
            continue
        if canonical not in forms:
            forms.append(canonical)
    return forms


def _identifier_error(name: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(message, errors=[{"loc": ["identifiers", name], "type": kind}])


def _strong_key(scheme: IdScheme, canonical: str, country: str | None) -> str | None:
    """The strong blind-index key registrations store for this number (``gateway.identity.strong_key``),
    or None for a passport whose issuing country was not given: a passport number alone is no strong
    identifier."""
    if SCHEME_COUNTRY[scheme] is None and not country:
        return None
    return strong_key(NationalId.model_construct(scheme=scheme, value=canonical),
                      _country(country) if country else None)


def _e164(value: str) -> str:
    """A phone number as registrations store it (E.164), so the blind index can match it."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise _identifier_error("phone", "phone must be an international number starting with + and a country "
                                         "code") from None
    if not phonenumbers.is_valid_number(parsed):
        raise _identifier_error("phone", "phone is not a valid number for its country code")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _country(value: str) -> str:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise _identifier_error("country", "country must be an ISO 3166-1 alpha-2 code")
    return code


def _check_name_address(identifiers: dict[str, str]) -> None:
    """Name and postal address match only together (a name alone, or an address alone, is shared by
    too many to be worth listing): name, street and country, the postal code if the person gave one."""
    parts = ("name", "street", "postal_code")
    if not any(p in identifiers for p in parts):
        return
    for needed in ("name", "street", "country"):
        if needed not in identifiers:
            raise _identifier_error(needed, "name, street and country are needed together to match a name and "
                                            "postal address", "missing")
    _country(identifiers["country"])


def recorded_language(values: builtins.list[dict[str, Any] | None]) -> Lang:
    """The letter's language from the registrant's recorded one (``Registrant.language``), as the latest
    disclosed values that carry it say: "en" gives English, anything else (or nothing) Swedish."""
    for v in reversed(values):
        if v and isinstance(v.get("language"), str):
            return "en" if v["language"] == "en" else "sv"
    return "sv"


def ordered_language(registrations: Iterable[Mapping[str, Any]]) -> Lang | None:
    """The letter's language from the language the person last ordered in (``registrations.language``,
    schema 9): "en" gives English, any other recorded language Swedish; None when no registration recorded
    one (made before schema 9), so the disclosed values decide."""
    recorded = [r for r in registrations if r.get("language")]
    if not recorded:
        return None
    latest = max(recorded, key=lambda r: (str(r.get("created_at") or ""), str(r.get("id") or "")))
    return "en" if latest["language"] == "en" else "sv"


def _nothing_to_wake() -> None:
    """No delivery worker in this process: queued updates wait for a process that sends."""


class RightsService:
    """Requests and everything that follows from them, for the API, the staff pages and the CLI alike.

    The follow-ups that reach recipients (Art. 19 notices after a restriction or objection, deletion
    requests after an erasure, the corrected data after a rectification) are made here, so no caller
    can do the action and forget to tell the recipients.  ``partners`` resolves an HTTPS partner's
    endpoint (None: nobody is contacted, every notice is left to staff); ``changes`` queues a
    rectification; ``wake`` tells the delivery worker that updates were queued."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        policies: PolicySet,
        clock: Callable[[], dt.datetime] = utcnow,
        *,
        config_dir: Path | None = None,
        retention_config: RetentionConfig | None = None,
        controller: ControllerConfig | None = None,
        changes: ChangeService | None = None,
        partners: PartnerEndpoints | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.policies = policies
        self.clock = clock
        if retention_config is None or controller is None:
            cfg = config_dir or default_config_dir()
            retention_config = retention_config or load_retention(cfg)
            controller = controller or load_controller(cfg)
        self.retention_config = retention_config
        self.controller = controller
        self.changes = changes or ChangeService(store, ledger, policies)
        self.partners = partners
        self.wake = wake or _nothing_to_wake

    # -- requests -------------------------------------------------------------------------------------

    async def _event(self, request_id: str, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self.store.add_request_event(request_id, iso(self.clock()), actor, action, detail)

    async def candidates(self, identifiers: dict[str, str]) -> builtins.list[dict[str, Any]]:
        """Every subject ANY identifier given matches, each as ``{"subject_id", "matched_by"}`` (kinds in
        ``MATCH_ORDER``), strongest first; nothing is merged and nothing is decided here.

        The one way a subject is found from what a person or staff member typed: requests (API and
        pages) and the staff pages' disclosure-log search all come here, so they match alike.  The
        identifiers are only turned into blind-index digests, never stored or logged."""
        found: dict[str, builtins.list[str]] = {}

        def add(sid: str, how: str) -> None:
            kinds = found.setdefault(sid, [])
            if how not in kinds:
                kinds.append(how)

        for how, pairs in self._lookups(identifiers):
            digests = []
            for kind, value in pairs:
                try:
                    digests += self.ledger.digests([(kind, value)])
                except ValueError:  # nothing left to index (e.g. a national ID of punctuation only)
                    continue
            for sid in await self.store.find_subjects(digests) if digests else []:
                add(sid, how)
        if "contact_id" in identifiers:  # also the contact ids in the log, for records indexed before the links
            want = identifiers["contact_id"].strip().upper()
            for sid in [s for s, kinds in found.items() if "contact_id" not in kinds]:
                if any(str(v).upper() == want for e in await self._entries([sid]) for v in e.objects.values()):
                    add(sid, "contact_id")
        if "domain" in identifiers:
            try:
                domain = to_a_label(identifiers["domain"])
            except ValueError:
                domain = identifiers["domain"].strip().lower().rstrip(".")
            for sid in found:
                if any(r["domain"] == domain for r in await self.store.subject_registrations(sid)):
                    add(sid, "domain")
        out = [{"subject_id": sid, "matched_by": sorted(kinds, key=MATCH_ORDER.index)} for sid, kinds in found.items()]
        out.sort(key=lambda c: (MATCH_ORDER.index(c["matched_by"][0]), -len(c["matched_by"]), c["subject_id"]))
        return out[:MAX_CANDIDATES]

    @staticmethod
    def _lookups(identifiers: dict[str, str]) -> builtins.list[tuple[str, builtins.list[tuple[str, str]]]]:
        """(match kind, blind-index pairs to look up) for each identifier given, with the index kinds
        registrations store (``gateway.identity.identity_keys``)."""
        out: builtins.list[tuple[str, builtins.list[tuple[str, str]]]] = []
        if "national_id" in identifiers:
            scheme = identifiers.get("national_id_scheme")
            forms = national_id_forms(identifiers["national_id"], scheme)
            if scheme is not None:
                strong = _strong_key(IdScheme(scheme), forms[0], identifiers.get("country"))
                if strong is not None:
                    out.append(("strong_id", [("strong_id", strong)]))
            out.append(("national_id", [("national_id", f) for f in forms]))
        if "contact_id" in identifiers:
            out.append(("contact_id", [("contact_id", identifiers["contact_id"])]))
        if "email" in identifiers:
            out.append(("email", [("email", identifiers["email"])]))
        if "phone" in identifiers:
            out.append(("phone", [("phone", _e164(identifiers["phone"]))]))
        if "name" in identifiers:
            street = [line.strip() for line in identifiers["street"].splitlines() if line.strip()]
            key = name_address_key(identifiers["name"], street, identifiers.get("postal_code"),
                                   _country(identifiers["country"]))
            out.append(("name_address", [("name_address", key)]))
        return out

    async def _live(self, subject_id: str) -> bool:
        key = await self.store.subject_key(subject_id)
        return key is not None and key.wrapped is not None

    async def open_request(
        self, *, kind: RequestKind, channel: str, identity_check: str, verified_by: str, actor: str,
        identifiers: dict[str, str],
    ) -> dict[str, Any]:
        """Open a request and list its candidate records; nothing is acted on until staff confirm."""
        if kind not in REQUEST_KINDS:
            raise ValidationFailed("unknown request kind", errors=[{"loc": ["kind"], "type": "literal_error"}])
        channel = _text("channel", channel, 40)
        identity_check = _text("identity_check", identity_check)
        verified_by = _text("verified_by", verified_by, 80)
        if not isinstance(identifiers, dict) or not set(identifiers) <= IDENTIFIER_KEYS:
            raise ValidationFailed("unknown identifier", errors=[{"loc": ["identifiers"], "type": "extra_forbidden"}])
        for k, v in identifiers.items():
            _text(f"identifiers.{k}", v, 800 if k == "street" else 254)
        _check_name_address(identifiers)
        if not identifiers.keys() & {"email", "national_id", "phone", "name", "contact_id"}:
            raise IdentifiersMissing(errors=[{"loc": ["identifiers"], "type": "missing"}])
        candidates = await self.candidates(identifiers)
        now = self.clock()
        request_id = uuid.uuid4().hex
        await self.store.open_request({
            "id": request_id, "kind": kind, "channel": channel, "identity_check": identity_check,
            "verified_by": verified_by, "opened_by": actor, "opened_at": iso(now),
            "deadline": deadline_for(now.date()).isoformat(), "state": "open",
            "subject_id": None, "closed_at": None,
            "data": {"candidates": candidates, "identifiers_given": sorted(identifiers)},
        })
        await self._event(request_id, actor, "opened", {
            "kind": kind, "channel": channel, "identifiers_given": sorted(identifiers),
        })
        if candidates:
            await self._event(request_id, actor, "candidates_found", {"candidates": candidates})
        else:
            await self._event(request_id, actor, "no_candidates", {"identifiers_given": sorted(identifiers)})
        log.info("rights.request_opened", request=request_id, kind=kind, candidates=len(candidates))
        return await self.get(request_id)

    async def confirm_subjects(self, request_id: str, actor: str, subject_ids: builtins.list[str]) -> dict[str, Any]:
        """Staff's decision on who the person is: the candidates in ``subject_ids`` are the person's
        records, every other candidate is not.  An empty list says that none of them is (the answer
        to an access request is then that no data is held).  Only candidates can be confirmed, so a
        subject id learnt elsewhere cannot be slipped into someone's request.  May be made again
        while the request is open (each decision is an event, with the one it replaces)."""
        row = await self._open_row(request_id)
        if not isinstance(subject_ids, list) or not all(isinstance(s, str) for s in subject_ids):
            raise ValidationFailed("'subject_ids' must be a list of subject ids",
                                   errors=[{"loc": ["subject_ids"], "type": "list_type"}])
        candidates = self._candidates(row)
        matched = {c["subject_id"]: c["matched_by"] for c in candidates}
        strangers = [{"loc": ["subject_ids", i], "type": "not_a_candidate"}
                     for i, s in enumerate(subject_ids) if s not in matched]
        if strangers:
            raise NotACandidate(errors=strangers)
        chosen = set(subject_ids)
        confirmed = [c["subject_id"] for c in candidates if c["subject_id"] in chosen]
        previous = self._confirmed_ids(row)
        now = iso(self.clock())
        data = dict(row["data"], confirmed={"subject_ids": confirmed, "at": now, "by": actor})
        await self.store.update_request(request_id, {"subject_id": confirmed[0] if confirmed else None, "data": data})
        detail: dict[str, Any] = {
            "subject_ids": confirmed,
            "matched_by": [{"subject_id": s, "matched_by": matched[s]} for s in confirmed],
            "candidates_not_confirmed": len(candidates) - len(confirmed),
        }
        if previous is not None:
            detail["replaces"] = previous
        await self._event(request_id, actor, "subjects_confirmed", detail)
        log.info("rights.subjects_confirmed", request=request_id, confirmed=len(confirmed),
                 candidates=len(candidates))
        return await self.get(request_id)

    def _view(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["days_left"] = (None if row["state"] == "closed"
                            else days_left(dt.date.fromisoformat(row["deadline"]), self.clock().date()))
        out["confirmed_subject_ids"] = self._confirmed_ids(row)
        out["candidate_count"] = len(self._candidates(row))
        return out

    async def _row(self, request_id: str) -> dict[str, Any]:
        row = await self.store.request(request_id) if re.fullmatch(r"[0-9a-f]{32}", request_id) else None
        if row is None:
            raise RequestNotFound()
        return row

    async def _open_row(self, request_id: str) -> dict[str, Any]:
        row = await self._row(request_id)
        if row["state"] == "closed":
            raise RequestClosed()
        return row

    @staticmethod
    def _candidates(row: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """The request's candidates; a request opened before candidates existed lists the subjects its
        lookup found then, which staff must now confirm like any other."""
        data = row["data"]
        if isinstance(data.get("candidates"), list):
            return [dict(c) for c in data["candidates"]]
        legacy = [str(s) for s in data.get("subject_ids") or []]
        if row.get("subject_id") and row["subject_id"] not in legacy and not data.get("confirmed"):
            legacy.insert(0, str(row["subject_id"]))
        return [{"subject_id": s, "matched_by": list(data.get("matched_by") or [])} for s in legacy]

    @staticmethod
    def _confirmed_ids(row: dict[str, Any]) -> builtins.list[str] | None:
        confirmed = row["data"].get("confirmed")
        return [str(s) for s in confirmed["subject_ids"]] if isinstance(confirmed, dict) else None

    def _confirmed(self, row: dict[str, Any]) -> builtins.list[str]:
        """The subjects staff confirmed (possibly none); 409 before staff have decided."""
        ids = self._confirmed_ids(row)
        if ids is None:
            raise SubjectNotConfirmed()
        return ids

    def _subjects(self, row: dict[str, Any]) -> builtins.list[str]:
        """The confirmed subjects of an action that needs at least one."""
        ids = self._confirmed(row)
        if not ids:
            raise SubjectNotIdentified("staff confirmed that none of the candidate records is the person's")
        return ids

    async def _candidate_views(self, row: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """Candidates as staff weigh them: how each matched, its registrations and domains (A-labels),
        whether its key is erased, whether it is confirmed or suggested.  Read fresh on every view."""
        candidates = self._candidates(row)
        confirmed = self._confirmed_ids(row)
        strong = [c["subject_id"] for c in candidates if "strong_id" in c["matched_by"]]
        out = []
        for c in candidates:
            sid = c["subject_id"]
            regs = await self.store.subject_registrations(sid)
            out.append({
                "subject_id": sid, "matched_by": c["matched_by"], "strong": sid in strong,
                "registrations": len(regs), "domains": sorted({str(r["domain"]) for r in regs}),
                "erased": not await self._live(sid),
                "confirmed": confirmed is not None and sid in confirmed,
                "suggested": len(strong) == 1 and sid in strong,
            })
        return out

    async def get(self, request_id: str) -> dict[str, Any]:
        row = await self._row(request_id)
        return self._view(row) | {"candidates": await self._candidate_views(row),
                                  "events": await self.store.request_events(request_id)}

    async def list(self, state: str | None = None) -> builtins.list[dict[str, Any]]:
        if state is not None and state not in ("open", "closed"):
            raise ValidationFailed("state must be 'open' or 'closed'", errors=[{"loc": ["state"], "type": "enum"}])
        return [self._view(r) for r in await self.store.requests(state)]

    async def extend(self, request_id: str, actor: str, reason: str) -> dict[str, Any]:
        row = await self._open_row(request_id)
        reason = _text("reason", reason, 500)
        opened = _parse_time(row["opened_at"]).date()
        why = extension_refusal(opened, self.clock().date(), already_extended=bool(row["data"].get("extension")))
        if why is not None:
            raise ExtensionRefused(why)
        deadline = extended_deadline(opened).isoformat()
        data = dict(row["data"], extension={"at": iso(self.clock()), "by": actor, "reason": reason,
                                            "previous_deadline": row["deadline"]})
        await self.store.update_request(request_id, {"deadline": deadline, "data": data})
        await self._event(request_id, actor, "extended", {"deadline": deadline, "previous": row["deadline"],
                                                          "reason": reason, "subject_to_be_informed": True})
        return await self.get(request_id)

    async def close(self, request_id: str, actor: str, outcome: str) -> dict[str, Any]:
        row = await self._open_row(request_id)
        outcome = _text("outcome", outcome, 200)
        now = iso(self.clock())
        await self.store.update_request(request_id, {"state": "closed", "closed_at": now,
                                                     "data": dict(row["data"], outcome=outcome)})
        await self._event(request_id, actor, "closed", {"outcome": outcome})
        return await self.get(request_id)

    # -- casework: assignee, internal notes, reminders, whom it is about ----------------------------------

    async def assign(self, request_id: str, actor: str, assignee: str | None) -> dict[str, Any]:
        """Assign the request to a staff account of the privacy role that can log in (``None``: nobody).
        The account's name is checked against the store, so a typo cannot assign a request to no one."""
        await self._row(request_id)
        if assignee is not None:
            account = await cast(AccountStore, self.store).account(assignee)
            if account is None or not account.active or account.role != "privacy":
                raise ValidationFailed("'assignee' must be an active staff account of the privacy role",
                                       errors=[{"loc": ["assignee"], "type": "not_an_account"}])
        if not await cast(RequestExtraStore, self.store).assign_request(request_id, assignee, at=iso(self.clock()),
                                                                        actor=actor):
            raise RequestNotFound()
        log.info("rights.assigned", request=request_id)
        return await self.get(request_id)

    async def assignees(self) -> builtins.list[StaffAccount]:
        """The accounts a request can be assigned to: active, privacy role, by name."""
        return sorted((a for a in await cast(AccountStore, self.store).accounts() if a.active and a.role == "privacy"),
                      key=lambda a: a.name)

    async def add_note(self, request_id: str, actor: str, text: str) -> dict[str, Any]:
        """An internal note: a request event of kind ``note`` attributed to ``actor``.  Notes are staff's
        working record; the extract and its letter are built from the log and the policies, never from
        request events, so a note cannot reach the data subject."""
        await self._row(request_id)
        note = _text("note", text, NOTE_LIMIT)
        await self._event(request_id, actor, "note", {"text": note})
        return await self.get(request_id)

    async def reminders(self, *, within_days: int = REMINDER_DAYS) -> builtins.list[dict[str, Any]]:
        """Open requests due within ``within_days`` or overdue, soonest first (Art. 12(3))."""
        rows = await self.list("open")
        return [dict(r) for r in reminders(rows, self.clock().date(), within_days=within_days)]

    def deadline_view(self, row: dict[str, Any]) -> DeadlineView:
        """The request's deadline with its days left and, if it was moved off a day off, from where."""
        return deadline_view(_parse_time(row["opened_at"]).date(), dt.date.fromisoformat(row["deadline"]),
                             self.clock().date(), extended=bool(row["data"].get("extension")))

    async def current_values(self, request_id: str, actor: str) -> dict[str, CurrentValues | None]:
        """Today's values of each confirmed subject of the request (None: erased), each read recorded in
        the access log (``request.subject_read``, ids only).  Nothing before staff confirmed whose records
        these are: candidates are not read."""
        row = await self._row(request_id)
        out: dict[str, CurrentValues | None] = {}
        for sid in self._confirmed_ids(row) or []:
            values = await read_current_values(self.store, self.ledger, self.policies.recipients, sid)
            if values is not None and values.values:
                await self.ledger.record_access(actor, "request.subject_read", request_id, sid)
            out[sid] = values
        return out

    # -- the subject's entries --------------------------------------------------------------------------

    async def _entries(self, subject_ids: builtins.list[str]) -> builtins.list[DisclosureEntry]:
        out: builtins.list[DisclosureEntry] = []
        for sid in subject_ids:
            out.extend([e async for e in self.store.iter_disclosures(DisclosureFilter(subject_id=sid), page=_PAGE)])
        return sorted(out, key=lambda e: e.leaf_index or 0)

    def _purpose_text(self, purpose: str, lang: Lang) -> tuple[str, str | None]:
        cfg = self.retention_config.purposes.get(purpose)
        if cfg is None:
            builtin = BUILTIN_PURPOSES.get(purpose)
            if builtin is None:
                return purpose, None
            return tr(lang, builtin["description"]), builtin["lawful_basis"]
        return cfg.description.get(lang), cfg.lawful_basis

    # -- Art. 15 extract --------------------------------------------------------------------------------

    async def extract(self, request_id: str, actor: str, lang: Lang | None = None) -> dict[str, Any]:
        """The Art. 15 extract of exactly the confirmed subjects' disclosures (none if staff confirmed that
        no candidate is the person); 409 before confirmation, so no candidate's data is ever read on
        the strength of a match alone.  Without ``lang`` the letter is in the registrant's recorded
        language (``Registrant.language`` of their latest registration, or for registrations made before
        it was kept, as the latest disclosed values carry it): English when that is "en", else Swedish."""
        if lang is not None and lang not in LANGS:
            raise ValidationFailed("lang must be 'sv' or 'en'", errors=[{"loc": ["lang"], "type": "literal_error"}])
        row = await self._row(request_id)
        subject_ids = self._confirmed(row)
        # The extract is complete as of its checkpoint: if entries arrive while we read, sign again.
        cp: SignedCheckpoint | None = None
        entries: builtins.list[DisclosureEntry] = []
        for _ in range(5):
            cp = await self.ledger.checkpoint()
            entries = await self._entries(subject_ids)
            if all((e.leaf_index or 0) < cp.checkpoint.size for e in entries):
                break
        assert cp is not None
        entries = [e for e in entries if (e.leaf_index or 0) < cp.checkpoint.size]
        erased = {sid: not await self._live(sid) for sid in subject_ids}
        read: builtins.list[tuple[DisclosureEntry, dict[str, Any] | None, str | None]] = []
        for e in entries:
            values: dict[str, Any] | None = None
            note = values_note(e, erased=erased.get(e.subject_id or "", False))
            if note is None:
                try:
                    values = await self.ledger.entry_values(e)
                except SubjectErased:
                    note = "erased"
            read.append((e, values, note))
        registrations = await self._subject_registrations(subject_ids)
        if lang is None:
            lang = ordered_language(registrations.values()) or recorded_language([v for _e, v, _n in read])
        domains = {rid: str(r["domain"]) for rid, r in registrations.items()}
        items = []
        for e, values, note in read:
            purpose_text, basis = self._purpose_text(e.purpose, lang)
            proof = await self.ledger.inclusion(e, cp.checkpoint.size)
            items.append(present_entry(e, values, note, proof, lang, purpose_text, basis,
                                       domain=domains.get(e.registration_id or "")))
        purposes = sorted({e.purpose for e in entries})
        held = await subject_holdings(self.store, subject_ids, self.policies.recipients,
                                               self.retention_config)
        planned = await self._planned(registrations, entries, lang)
        c = self.controller
        extract: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "request_id": request_id,
            "subject_id": subject_ids[0] if subject_ids else None,
            "subject_ids": subject_ids,
            "generated_at": iso(self.clock()),
            "lang": lang,
            "controller": c.controller.model_dump() | {"placeholder": c.placeholder},
            "dpo": c.dpo.model_dump() if c.dpo else None,
            "supervisory_authority": c.supervisory_authority.model_dump(exclude={"source", "confirmed",
                                                                                 "former_name"}),
            "source": tr(lang, SOURCE),
            "automated_decisions": tr(lang, AUTOMATED),
            "purposes": [self._purpose_view(p, lang) for p in sorted(set(purposes) | {q["purpose"] for q in planned})],
            "retention": [self._purpose_view(p, lang) for p in sorted(self.retention_config.purposes)],
            # nothing of theirs is processed when no record is theirs: only the complaint right applies (as the
            # letter says)
            "rights": [r for r in rights(lang) if subject_ids or r["right"] == "complaint"],
            "checkpoint": cp.to_json(),
            "verification": {"text": tr(lang, VERIFY), "key_id": cp.key_id,
                             "public_key": "GET /v1/ledger/public-key"},
            "disclosures": items,
            "planned": planned,
            "holdings": self._holdings_view(held, lang),
        }
        await self._event(request_id, actor, "extract", {
            "lang": lang, "entries": len(items), "checkpoint_size": cp.checkpoint.size,
            "entry_ids": [e.id for e in entries],
        })
        readers: builtins.list[str | None] = [*subject_ids] or [None]
        for sid in readers:
            await self.ledger.record_access(actor, "rights.extract", request_id, sid)
        return extract

    async def _subject_registrations(self, subject_ids: builtins.list[str]) -> dict[str, dict[str, Any]]:
        regs: dict[str, dict[str, Any]] = {}
        for sid in subject_ids:
            for reg in await self.store.subject_registrations(sid):
                regs[str(reg["id"])] = reg
        return regs

    async def _planned(
        self, registrations: Mapping[str, dict[str, Any]], entries: builtins.list[DisclosureEntry], lang: Lang,
    ) -> builtins.list[dict[str, Any]]:
        """Art. 15(1)(c) "recipients to whom the data will be disclosed": outbox rows not yet sent (pending or
        in flight, e.g. an escrow deposit waiting for its batch) to a recipient that has no entry of that
        registration yet, with the fields and transfer basis its plan decided.  Metadata only."""
        sent = {(e.registration_id, e.recipient) for e in entries}
        out: builtins.list[dict[str, Any]] = []
        for rid, reg in registrations.items():
            full = await self.store.registration(rid)
            if full is None:
                continue
            plan = {str(p.get("recipient")): p for p in full.get("plan") or [] if isinstance(p, dict)}
            waiting = {str(d["recipient"]) for d in full.get("deliveries", []) if d["state"] in _WAITING}
            for recipient in sorted(waiting):
                p = plan.get(recipient)
                if (rid, recipient) in sent or p is None or p.get("refused") or not p.get("fields_sent"):
                    continue
                policy = self.policies.recipients.get(recipient)
                purpose = policy.purposes[0] if policy is not None else "domain_registration"
                purpose_text, basis = self._purpose_text(purpose, lang)
                country = str(p.get("country") or (policy.country if policy else ""))
                transfer = p.get("transfer") or {}
                out.append({
                    "registration_id": rid, "domain": reg.get("domain"),
                    "recipient": {"id": recipient, "name": str(p.get("recipient_name") or recipient),
                                  "country": country, "country_name": country_name(country, lang)},
                    "purpose": purpose, "purpose_text": purpose_text, "lawful_basis": basis,
                    "fields": list(p.get("fields_sent") or []),
                    "transfer": {k: transfer.get(k) for k in ("category", "article", "instrument")},
                })
        return out

    def check_letter_ready(self) -> None:
        """Raise ``ControllerNotConfigured`` (409) while the controller's details are placeholders, so a
        letter is refused before any extract is made (the letter itself checks again)."""
        c = self.controller
        render.require_configured({"controller": c.controller.model_dump() | {"placeholder": c.placeholder},
                                   "dpo": c.dpo.model_dump() if c.dpo else None})

    def letter_warnings(
        self, extract: dict[str, Any], _: Callable[[str], str] = lambda text: text
    ) -> builtins.list[str]:
        """What staff should check before sending the letter (shown on the extract page, never in the
        letter): facts the letter states that configuration marks unconfirmed, purposes whose retention is
        not configured, configuration texts without a translation, and controller placeholders.  ``_``
        translates them into the staff page's language (the UI catalogue; English without it)."""
        lang: Lang = "en" if extract.get("lang") == "en" else "sv"
        warnings: builtins.list[str] = []
        c = self.controller
        if c.placeholder:
            warnings.append(_("The controller's details are placeholders (controller.yaml, placeholder: true): "
                              "letters are refused until they are set."))
        if not c.supervisory_authority.confirmed:
            warnings.append(_("The supervisory authority's details are not confirmed (controller.yaml)."))
        shown_purposes = {p["purpose"] for p in extract.get("purposes") or []}
        for purpose in sorted(shown_purposes):
            cfg = self.retention_config.purposes.get(purpose)
            if cfg is None:
                follows = BUILTIN_PURPOSES.get(purpose, {}).get("as")
                if follows:
                    warnings.append(_("Purpose '%(purpose)s' has no retention period in retention.yaml: the letter "
                                      "states the retention of '%(follows)s', which the retention job does not "
                                      "apply to these entries until the purpose is added.")
                                    % {"purpose": purpose, "follows": follows})
                else:
                    warnings.append(_("Purpose '%(purpose)s' has no retention period in retention.yaml: the letter "
                                      "states none.") % {"purpose": purpose})
            elif not cfg.confirmed:
                warnings.append(_("The retention period of purpose '%(purpose)s' is not confirmed (retention.yaml, "
                                  "confirmed: false); the letter states it as configured.") % {"purpose": purpose})
        recipients = {d["recipient"]["id"] for d in extract.get("disclosures") or []}
        recipients |= {q["recipient"]["id"] for q in extract.get("planned") or []}
        recipients |= {r["recipient"] for r in (extract.get("holdings") or {}).get("recipients", [])}
        facts: builtins.list[str] = []
        for rid in sorted(recipients):
            policy = self.policies.recipients.get(rid)
            if policy is None:
                continue
            if not policy.confirmed or "UNCONFIRMED" in policy.name:
                warnings.append(_("Recipient '%(recipient)s': its policy file marks facts as unconfirmed (confirmed: "
                                  "false or a note in its name); check what the letter says about it (the note is "
                                  "left out).") % {"recipient": rid})
            if texts.recipient_name(policy.name, lang) == texts.letter_safe(policy.name):
                facts.append(policy.name)  # not translated, not even as "X (.tld registry)"
            if policy.retention:
                facts.append(policy.retention)
        facts += [str(p.get("lawful_basis") or "") for p in extract.get("purposes") or []]
        if lang != "en":
            for text in untranslated([f for f in facts if f], lang):
                warnings.append(_("No %(lang)s translation in the letters catalogue for the configured text "
                                  "%(text)s; the letter shows it as written.") % {"lang": lang, "text": repr(text)})
        return warnings

    async def holdings(self, subject_id: str, lang: Lang = "en") -> dict[str, Any]:
        """Who holds the subject's data now (metadata only: nothing is decrypted), the reasons in ``lang``;
        ``NotFound`` for a subject the gateway does not know."""
        if not re.fullmatch(r"[0-9a-f]{32}", subject_id) or await self.store.subject_key(subject_id) is None:
            raise NotFound("no such data subject")
        held = await subject_holdings(self.store, [subject_id], self.policies.recipients, self.retention_config)
        view = held.as_dict(lang) | {"at": iso(self.clock())}
        for r in view["recipients"]:
            r["country_name"] = country_name(r["country"], lang)
        return view

    def _holdings_view(self, held: Holdings, lang: Lang) -> dict[str, Any]:
        """The letter's "who holds your data now" section: the holdings in the letter's language."""
        view = held.as_dict(lang)
        words = HOLDINGS[lang]
        for r in view["recipients"]:
            r["country_name"] = country_name(r["country"], lang)
            for o in r["objects"]:
                o["kind_text"] = words[o["kind"]]
        for c in view["retention"]["copies"]:
            c["purpose_text"] = self._purpose_text(c["purpose"], lang)[0]
        return {"heading": words["heading"], "intro": words["intro"], "recipients": view["recipients"],
                "own": view["retention"]["copies"], "measured_from": view["retention"]["measured_from"]}

    def _purpose_view(self, purpose: str, lang: Lang) -> dict[str, Any]:
        cfg = self.retention_config.purposes.get(purpose)
        if cfg is None:
            builtin = BUILTIN_PURPOSES.get(purpose)
            follows = self.retention_config.purposes.get(builtin["as"]) if builtin else None
            if builtin is None or follows is None:
                return {"purpose": purpose, "description": purpose, "lawful_basis": None, "retention": None,
                        "period_months": None}
            return {"purpose": purpose, "description": tr(lang, builtin["description"]),
                    "lawful_basis": builtin["lawful_basis"], "retention": follows.criteria.get(lang),
                    "period_months": follows.period_months}
        return {"purpose": purpose, "description": cfg.description.get(lang), "lawful_basis": cfg.lawful_basis,
                "retention": cfg.criteria.get(lang), "period_months": cfg.period_months}

    def render_html(self, extract: dict[str, Any]) -> str:
        """The printable letter (HTML, autoescaped), in the extract's language; 409 while the controller's
        details are placeholders."""
        return render.render_html(extract)

    def render_pdf(self, extract: dict[str, Any]) -> bytes:
        """The same letter as a tagged PDF/UA document, fonts shipped with the package and embedded."""
        return pdf.render(extract)

    # -- Art. 18 / 21 -----------------------------------------------------------------------------------

    async def _recipients_reached(self, subject_ids: builtins.list[str]) -> builtins.list[str]:
        """Art. 19: who received (or may have received) the subject's data."""
        return sorted({e.recipient for e in await self._entries(subject_ids)
                       if e.fields and e.outcome in REACHED})

    async def _restrict(self, request_id: str, actor: str, kind: str, scope: str) -> dict[str, Any]:
        """One restriction (or objection) per confirmed subject, so the person's every record refuses
        further disclosures and no other holder's does."""
        row = await self._open_row(request_id)
        subjects = self._subjects(row)
        now = iso(self.clock())
        restrictions = [{"id": uuid.uuid4().hex, "subject_id": sid, "kind": kind, "scope": scope, "since": now,
                         "request_id": request_id} for sid in subjects]
        for restriction in restrictions:
            await self.store.add_restriction(restriction)
        notify = await self._recipients_reached(subjects)
        action = "restricted" if kind == "restriction" else "objected"
        await self._event(request_id, actor, action, {
            "restriction_id": restrictions[0]["id"], "restriction_ids": [r["id"] for r in restrictions],
            "subject_ids": subjects, "scope": scope, "notify_recipients": notify})
        notices = []
        for sid in subjects:
            notices += await art19_notices(self.store, self.policies, self.partners, request_id=request_id,
                                           subject_id=sid, actor=actor, kind=kind, scope=scope)
        return {"request_id": request_id, "restriction": restrictions[0], "restrictions": restrictions,
                "notify_recipients": notify, "notices": notices}

    async def restrict(self, request_id: str, actor: str, scope: str = "all") -> dict[str, Any]:
        if scope != "all" and scope not in self.policies.recipients:
            raise _scope_error("scope")
        return await self._restrict(request_id, actor, "restriction", scope)

    async def object(self, request_id: str, actor: str, scope: str = "marketing") -> dict[str, Any]:
        if scope != "marketing" and scope not in self.policies.recipients:
            raise _scope_error("scope")
        return await self._restrict(request_id, actor, "objection", scope)

    async def lift(self, request_id: str, restriction_id: str, actor: str) -> dict[str, Any]:
        row = await self._open_row(request_id)
        active = {r["id"] for sid in self._subjects(row) for r in await self.store.restrictions(sid)}
        if restriction_id not in active:
            raise RestrictionNotFound()
        now = iso(self.clock())
        if not await self.store.lift_restriction(restriction_id, now):
            raise RestrictionNotFound()
        await self._event(request_id, actor, "lifted", {"restriction_id": restriction_id,
                                                        "subject_informed_before_lifting": True})
        return {"request_id": request_id, "restriction_id": restriction_id, "lifted_at": now}

    # -- Art. 17 ----------------------------------------------------------------------------------------

    async def erase(self, request_id: str, actor: str) -> dict[str, Any]:
        """Crypto-shred the confirmed subjects' data keys (no other candidate's), list per recipient who
        received the data whether a deletion request can follow (Art. 17(2), 19), and make the requests
        HTTPS partners accept.

        The request row keeps the plan as it was before the partners were asked; each request's
        outcome is its own event and is in the returned report."""
        row = await self._open_row(request_id)
        subject_ids = self._subjects(row)
        entries = await self._entries(subject_ids)
        all_entries, facts, erased = await load_holdings(self.store, subject_ids)
        held = compute_holdings(subject_ids, all_entries, facts, self.policies.recipients, self.retention_config,
                                 erased=erased)
        now = iso(self.clock())
        shredded = [await self.ledger.shred(sid, now) for sid in subject_ids]
        recipients = self._deletion_plan(entries, facts, held, all_entries)
        data = dict(row["data"], erasure={"at": now, "recipients": recipients})
        await self.store.update_request(request_id, {"data": data})
        await self._event(request_id, actor, "erased", {
            "subject_ids": subject_ids, "keys_destroyed": sum(shredded),
            "recipients": [r["recipient"] for r in recipients],
        })
        log.info("rights.erased", request=request_id, subjects=len(subject_ids), keys_destroyed=sum(shredded))
        report = {"request_id": request_id, "erased_at": now, "subject_ids": subject_ids,
                  "keys_destroyed": sum(shredded), "already_erased": not any(shredded), "recipients": recipients}
        return await request_deletions(self.store, self.policies, self.partners, request_id=request_id, actor=actor,
                                       report=report)

    # -- Art. 16 ----------------------------------------------------------------------------------------

    async def rectify(self, request_id: str, actor: str, registrant: Registrant) -> builtins.list[dict[str, Any]]:
        """Art. 16 + 19: the corrected data goes, minimised, to every recipient of the confirmed subjects'
        old data; returns what happens for each recipient (queued, cannot be updated, refused)."""
        row = await self._row(request_id)
        subjects = self._confirmed(row)
        if not subjects:
            raise NotFound("the request has no subject to rectify")
        report = []
        for sid in subjects:
            report += await push_rectification(self.store, self.changes, request_id=request_id, subject_id=sid,
                                               actor=actor, registrant=registrant)
        self.wake()
        return report

    def _deletion_plan(
        self, entries: builtins.list[DisclosureEntry], registrations: Mapping[str, RegistrationFacts],
        held: Holdings, all_entries: builtins.list[DisclosureEntry],
    ) -> builtins.list[dict[str, Any]]:
        """Per recipient that received the data: what it holds now (the holdings), and whether a deletion
        request can follow.  A recipient whose objects the log shows deleted holds nothing to ask for; one that
        was sent no personal data (a thin registry) is listed with nothing to ask for either."""
        by_recipient: dict[str, builtins.list[DisclosureEntry]] = {}
        for e in entries:
            if e.outcome in REACHED:
                by_recipient.setdefault(e.recipient, []).append(e)
        deleted_at = {e.recipient for e in all_entries
                      if e.command in ("contact:delete", "domain:delete") and e.outcome == "deleted"}
        out = []
        for recipient, group in sorted(by_recipient.items()):
            policy = self.policies.recipients.get(recipient)
            fields = sorted({f for e in group for f in e.fields})
            reg_ids = sorted({e.registration_id for e in group})
            now_held = held.recipient(recipient)
            objects = [o.as_dict() for o in now_held.objects] if now_held is not None else []
            active = sorted(r for r in reg_ids if r in registrations and registrations[r].active)
            received = "delivered" if any(e.outcome == "delivered" for e in group) else "attempted"
            if not objects and recipient in deleted_at:
                deletion, reason = "not_needed", "the recipient no longer holds the data: its objects were deleted"
            else:
                deletion, reason = self._deletion_possible(policy, fields, active)
            out.append({
                "recipient": recipient, "recipient_name": group[-1].recipient_name,
                "country": group[-1].recipient_country, "kind": policy.kind if policy else None,
                "role": policy.role if policy else None, "received": received, "entries": len(group),
                "fields": fields, "registrations": reg_ids, "active_registrations": active,
                "holds": objects,
                "deletion_request": deletion, "reason": reason, "status": "pending" if deletion == "possible" else
                "none",
            })
        return out

    @staticmethod
    def _deletion_possible(
        policy: RecipientPolicy | None, fields: builtins.list[str], active: builtins.list[str]
    ) -> tuple[str, str]:
        if not fields:
            return "not_needed", "no personal data was sent to this recipient"
        if policy is None:
            return "possible", "recipient no longer configured: ask it directly to delete the data"
        if policy.kind == "registry" and active:
            return "not_possible", ("active registration: a registered domain needs a holder, so the registry keeps "
                                    "the holder contact while the domain exists; ask again once it is deleted or "
                                    "transferred (Art. 17(3)(b), contract)")
        if policy.kind == "escrow" and active:
            return "not_possible", ("active registration: registrar data escrow (ICANN RAA 3.6) must cover every "
                                    "active gTLD registration; the next full deposit after the domain ends drops it")
        if policy.kind == "registry":
            how = "EPP contact:delete of the holder contact" if policy.protocol == "epp" else "the registry's process"
            return "possible", f"no active registration: request deletion via {how}"
        if policy.role == "processor":
            return "possible", f"processor (Art. 28): instruct {policy.recipient} to delete the data"
        return "possible", "controller: ask the recipient to erase the data (Art. 17(2), 19)"

    # -- Art. 30 ----------------------------------------------------------------------------------------

    async def art30(self) -> dict[str, Any]:
        now = self.clock()
        pols = self.policies
        c = self.controller
        by_kind: dict[str, builtins.list[dict[str, Any]]] = {}
        transfers = []
        for rid, p in sorted(pols.recipients.items()):
            first = await self.store.disclosures(DisclosureFilter(recipient=rid, outcome="delivered", limit=1))
            view = {
                "recipient": rid, "name": p.name, "country": p.country, "role": p.role, "enabled": p.enabled,
                "tlds": list(p.tlds), "purposes": list(p.purposes),
                "fields": sorted(f for f, r in p.fields.items() if r.send != "never"),
                "third_country": p.country not in pols.jurisdictions.eea,
                "retention": p.retention, "source": p.source, "confirmed": p.confirmed,
                "first_disclosure_in_log": first[0].recorded_at if first else None,
            }
            by_kind.setdefault(p.kind, []).append(view)
            if p.country in pols.jurisdictions.eea:
                continue
            decision = classify_transfer(p, pols.jurisdictions, now, p.purposes[0],
                                         carries_personal_data=p.sends_personal_data)
            transfers.append({
                "recipient": rid, "name": p.name, "country": p.country, "category": decision.category.value,
                "article": decision.article, "instrument": decision.instrument,
                "safeguards": [{"article": s.article, "instrument": s.instrument, "signed": s.signed.isoformat(),
                                "valid_until": s.valid_until.isoformat() if s.valid_until else None,
                                "confirmed": s.confirmed} for s in p.safeguards],
                "derogation": ({"article": p.derogation.article, "justification": p.derogation.justification,
                                "purposes": list(p.derogation.purposes)} if p.derogation else None),
                "transfers_personal_data": decision.category not in (TransferCategory.NO_PERSONAL_DATA,
                                                                     TransferCategory.BLOCKED),
                "note": decision.reason, "confirmed": decision.confirmed,
            })
        purposes = sorted({pp for p in pols.recipients.values() for pp in p.purposes}
                          | set(self.retention_config.purposes))
        return {
            "record": "Art. 30(1) GDPR record of processing activities",
            "generated_at": iso(now),
            "controller": c.controller.model_dump() | {"placeholder": c.placeholder},
            "dpo": c.dpo.model_dump() if c.dpo else None,
            "supervisory_authority": c.supervisory_authority.model_dump(),
            "purposes": [
                self._purpose_view(p, "en") | {"recipients": sorted(r for r, pol in pols.recipients.items()
                                                                    if p in pol.purposes)}
                for p in purposes
            ],
            "categories_of_data_subjects": [
                "Domain name holders who are natural persons (registrants)",
                "Natural persons acting for organisations that hold domain names (contact persons)",
            ],
            "categories_of_personal_data": [
                {"field": name, "category": info.category, "description": info.description}
                for name, info in pols.catalog.fields.items()
            ],
            "recipients_by_category": {k: v for k, v in sorted(by_kind.items())},
            "third_country_transfers": transfers,
            "retention": {
                "measured_from": self.retention_config.measured_from,
                "purposes": {p: {"period_months": r.period_months, "criteria": r.criteria.en, "source": r.source,
                                 "confirmed": r.confirmed}
                             for p, r in sorted(self.retention_config.purposes.items())},
                "recipients": {rid: p.retention for rid, p in sorted(pols.recipients.items()) if p.retention},
            },
            "security_measures": [dict(m) for m in SECURITY_MEASURES],
        }

    # -- explainer --------------------------------------------------------------------------------------

    def explain(
        self, registrant: Registrant, tld: str, at: dt.datetime | None = None, us_nexus: UsNexus | None = None
    ) -> dict[str, Any]:
        """What a registration of this registrant under ``tld`` would send to whom, what would be withheld,
        and why — computed by the same pure planner the registrations use, without sending anything.
        Each recipient lists the registry's eligibility rules that apply and whether the sample meets
        them (``us_nexus`` is the order's .us declaration, if any); a refusal at acceptance (a rule not
        met, a protocol without an adapter) means the registration would be refused with nothing stored.
        The subject's own restrictions are not looked up (this takes no identity)."""
        tld = tld.strip().lower().lstrip(".") if isinstance(tld, str) else ""
        if not re.fullmatch(r"[a-z0-9-]{2,63}", tld):
            raise ValidationFailed("'tld' must be a top-level domain label",
                                   errors=[{"loc": ["tld"], "type": "pattern"}])
        when = at or self.clock()
        req = RegistrationRequest.model_construct(
            order_ref="explain", domain=f"explain.{tld}", period_years=1, nameservers=[],
            purpose="domain_registration", registrant=registrant, us_nexus=us_nexus,
        )
        jur = self.policies.jurisdictions
        plans = plan_registration(req, self.policies, when)
        at_acceptance = {p.policy.recipient: eligibility.refusal(p.policy, req, jur)
                         for p in plans if p.policy.required}
        refusals = {p.policy.recipient: at_acceptance.get(p.policy.recipient) or p.refusal for p in plans}
        blocking = [p for p in plans if refusals[p.policy.recipient] is not None and p.policy.required]
        recipients = []
        for p in plans:
            refusal = refusals[p.policy.recipient]
            would_send = refusal is None and not blocking
            sent = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(p.minimised.values.items())}
            recipients.append({
                "recipient": p.policy.recipient, "name": p.policy.name, "kind": p.policy.kind,
                "country": p.policy.country, "required": p.policy.required,
                "purpose": p.policy.purposes[0],
                "protocol": p.policy.protocol,
                "protocol_supported": p.policy.protocol in eligibility.SUPPORTED_PROTOCOLS,
                "eligibility": [o.as_dict() for o in eligibility.evaluate(p.policy, req, jur)],
                "transfer": p.decision.as_dict(),
                "would_send": would_send,
                "sent": sent if would_send else {},
                "would_have_sent": sent,
                "withheld": dict(sorted(p.minimised.withheld.items())),
                "missing_required": list(p.minimised.missing_required),
                "refused": None if refusal is None else {"code": refusal.code, "detail": refusal.detail},
                "why": self._why(refusal is not None, bool(blocking),
                                 refusal.detail if refusal is not None and refusal is not p.refusal
                                 else p.decision.reason),
            })
        first = next((r for r in at_acceptance.values() if r is not None), None)
        return {
            "tld": tld, "at": iso(when), "registration_possible": not blocking,
            "blocked_by": [p.policy.recipient for p in blocking],
            "refused_at_acceptance": None if first is None else {
                "code": first.code, "detail": first.detail, "errors": first.extra.get("errors", []),
            },
            "recipients": recipients,
            "note": ("Nothing was sent. If any required recipient is refused, nothing is sent to anyone "
                     "(fail closed). A registration refused at acceptance is not stored at all. The "
                     "subject's restrictions and objections, if any, also apply."),
        }

    @staticmethod
    def _why(refused: bool, blocking: bool, reason: str) -> str:
        if refused:
            return f"refused: {reason}" if reason else "refused"
        if blocking:
            return "nothing is sent: another required recipient is refused"
        return reason

    # -- retention --------------------------------------------------------------------------------------

    async def _relationship_ends(self, reg_ids: builtins.list[str]) -> dict[str, dt.datetime | None]:
        """When our relationship for each registration ended (None: still ours): ``registrations.ended_at``;
        a registration that never became a domain of ours (refused, failed) ended when it last changed.
        Only registrations without an ``ended_at`` are read one by one, for their status."""
        out: dict[str, dt.datetime | None] = {}
        ends = await self.store.registration_ends(reg_ids)
        for reg_id in reg_ids:
            ended_at, _ = ends.get(reg_id, (None, None))
            if ended_at is not None:
                out[reg_id] = _parse_time(ended_at)
                continue
            facts = await registration_facts(self.store, reg_id)
            end = facts.end if facts is not None else None
            out[reg_id] = _parse_time(end) if end is not None else None
        return out

    async def retention(
        self, *, dry_run: bool, progress: Callable[[int, int | None], None] | None = None
    ) -> dict[str, Any]:
        """Delete the sealed values of entries whose purpose's period has run out
        (``RetentionConfig.purge_date``): for purposes measured from the registration's end, the period runs
        from when our role for the entry's registration ended, so the values of a registration that is still
        ours are kept (``kept_active`` counts them); purposes measured from ``recorded_at`` (order
        confirmation, marketing) keep the old rule.

        ``progress(scanned, total)`` is called every ``_PROGRESS_EVERY`` entries scanned and once at the end
        of the scan; ``total`` is the ledger's size when the scan began (entries appended meanwhile can make
        ``scanned`` pass it, so it is raised to ``scanned`` then).  The purge that follows is not counted."""
        now = self.clock()
        cfg = self.retention_config
        expired: dict[str, builtins.list[str]] = {p: [] for p in cfg.purposes}
        kept_active: dict[str, int] = {p: 0 for p in cfg.purposes}
        unconfigured: dict[str, int] = {}
        #: entries of end-measured purposes past their period counted from recorded_at (the earliest the end
        #: rule can purge them): their registrations' ends decide, read in one batch after the scan
        waiting: dict[str, builtins.list[tuple[str, str, dt.datetime]]] = {}
        scanned = 0
        total = (await self.store.head()).size if progress is not None else None
        async for e in self.store.iter_disclosures(DisclosureFilter(), page=_PAGE):
            scanned += 1
            if progress is not None and scanned % _PROGRESS_EVERY == 0:
                progress(scanned, max(total or 0, scanned))
            if e.values_ct is None:
                continue
            purpose = cfg.purposes.get(e.purpose)
            recorded = _parse_time(e.recorded_at)
            if purpose is None:
                unconfigured[e.purpose] = unconfigured.get(e.purpose, 0) + 1
            elif purpose.expires(recorded) > now:
                continue  # not due under either rule
            elif cfg.measured(e.purpose) == "recorded_at":
                expired[e.purpose].append(e.id)
            else:
                waiting.setdefault(e.registration_id, []).append((e.id, e.purpose, recorded))
        ends = await self._relationship_ends(builtins.list(waiting))
        for reg_id, items in waiting.items():
            end = ends.get(reg_id)
            for entry_id, purpose_name, recorded in items:
                due = cfg.purge_date(purpose_name, recorded, end)
                if due is None:
                    kept_active[purpose_name] += 1
                elif due <= now:
                    expired[purpose_name].append(entry_id)
        if progress is not None:
            progress(scanned, max(total or 0, scanned))
        purged = 0
        if not dry_run:
            ids = [i for group in expired.values() for i in group]
            for start in range(0, len(ids), 500):
                purged += await self.store.purge_values(ids[start:start + 500])
        log.info("rights.retention", dry_run=dry_run, expired=sum(map(len, expired.values())), purged=purged)
        return {
            "dry_run": dry_run, "at": iso(now), "measured_from": cfg.measured_from,
            "scanned": scanned,
            "purposes": {p: {"period_months": cfg.purposes[p].period_months, "measured_from": cfg.measured(p),
                             "expired": len(ids), "ids": ids, "kept_registration_active": kept_active[p]}
                         for p, ids in sorted(expired.items())},
            "unconfigured_purposes": unconfigured,
            "expired": sum(len(v) for v in expired.values()),
            "purged": purged,
        }
