"""``gateway outbox parked [--recipient X] [--json]``, ``gateway outbox retry ID``, ``gateway outbox cancel ID``
and ``gateway outbox history``: parked deliveries for operators, as ``/v1/outbox/parked`` and
``/v1/outbox/{id}/retry|cancel`` (``gateway.services.parked``), on the store the settings name.

The actor written to the access log is ``--actor`` or else ``cli:<login name>``: a command run on the
server has no bearer token, so the operating-system account is who did it.  A retry from here cannot
wake a worker in another process: the row is due at once and the next poll
(``GATEWAY_WORKER_POLL_S``) picks it up.  An unknown row or one that is not parked is a one-line error
with exit 1, as every failure of the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
from typing import Any

from gateway.clock import iso, utcnow
from gateway.errors import OutboxRowNotFound
from gateway.services.parked import PARKED_ACTIONS, act_on_parked
from gateway.settings import Settings

COMMANDS = ("outbox",)
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}")


def _actor(value: str) -> str:
    if not _ACTOR.fullmatch(value):
        raise argparse.ArgumentTypeError("letters, digits and _ . @ : - only, at most 64")
    return value


def _row_id(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise argparse.ArgumentTypeError("an outbox row id is a whole number")
    return int(value)


def default_actor() -> str:
    """Who runs the command, as the access log records it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a bare container)
        name = "unknown"
    return f"cli:{name}"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = sub.add_parser("outbox", help="deliveries parked for staff: list, retry, cancel "
                                           "(as /v1/outbox/parked)")
    osub = outbox.add_subparsers(dest="outbox_cmd", required=True)
    listing = osub.add_parser("parked", help="rows waiting for staff, per recipient, with why they were parked")
    listing.add_argument("--recipient", help="one recipient id only, e.g. iis-se")
    listing.add_argument("--json", action="store_true", help="the rows as JSON")
    for action in PARKED_ACTIONS:
        act = osub.add_parser(action, help="queue the parked row again, due now" if action == "retry"
                              else "give up on the parked row for good")
        act.add_argument("id", type=_row_id, help="the row id (from `gateway outbox parked`)")
        act.add_argument("--actor", type=_actor, help="who decides, for the access log (default: cli:<login name>)")
    history = osub.add_parser("history", help="the latest staff retries and cancels, newest first")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--json", action="store_true")


def parked_text(rows: list[dict[str, Any]]) -> str:
    """Rows grouped under their recipient with counts, one line each (ids, codes, reason: no personal data)."""
    out: list[str] = []
    recipient = None
    for r in rows:
        if r["recipient"] != recipient:
            recipient = r["recipient"]
            count = sum(1 for x in rows if x["recipient"] == recipient)
            out.append(f"{recipient}: {count} parked")
        out.append(f"  {r['id']:>8}  registration {r['registration_id']}  {r['purpose']}  attempts {r['attempts']}  "
                   f"code {r['last_code'] or '-'}  since {r['updated_at']}  {r['parked_reason'] or ''}".rstrip())
    out.append(f"{len(rows)} parked row{'s' if len(rows) != 1 else ''}")
    return "\n".join(out) + "\n"


def history_text(actions: list[dict[str, Any]]) -> str:
    lines = [f"{a['at']}  {a['action']:<6}  row {a['row_id']}  {a['recipient'] or '-'}  "
             f"registration {a['registration_id'] or '-'}  by {a['actor']}" for a in actions]
    return "\n".join([*lines, f"{len(actions)} action{'s' if len(actions) != 1 else ''}"]) + "\n"


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_store

    store = await open_store(settings)
    try:
        if args.outbox_cmd == "parked":
            rows = await store.parked(args.recipient)
            print(json.dumps(rows, indent=2) if args.json else parked_text(rows), end="\n" if args.json else "")
            return 0
        if args.outbox_cmd == "history":
            actions = await store.parked_actions(max(1, min(args.limit, 1000)))
            print(json.dumps(actions, indent=2) if args.json else history_text(actions),
                  end="\n" if args.json else "")
            return 0
        actor = args.actor or default_actor()
        try:
            await act_on_parked(store, args.id, args.outbox_cmd, actor=actor, now=iso(utcnow()))
        except OutboxRowNotFound:
            raise OutboxRowNotFound(f"no outbox row {args.id}") from None
        done = "queued again, due now" if args.outbox_cmd == "retry" else "cancelled"
        print(f"row {args.id}: {done} (logged as {actor})")
        return 0
    finally:
        await store.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))
