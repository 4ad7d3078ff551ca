"""``gateway art30 [--json]`` and ``gateway explain --tld TLD --registrant FILE.json``: the Art. 30 record
and the policy explainer for privacy staff, from the settings' policy files and store; ``gateway retention
purge [--dry-run]`` and ``gateway requests list|show`` as the API's ``/v1/retention/purge`` and ``/v1/requests``.

``explain`` sends nothing: it runs the same pure planner registrations use.  The registrant file holds
a registrant as in an order's ``registrant`` member (or a whole order, whose ``registrant`` is used);
problems name the fields, never their values.  Exit 0 on success, 1 if the plan cannot be made (e.g. no
policy for the TLD), 2 if the registrant file cannot be read or is not valid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gateway.cli.progress import tracking
from gateway.errors import InputError, PolicyRefusal
from gateway.models import Registrant
from gateway.policy.loader import load_policies
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.rights.service import RightsService

COMMANDS = ("art30", "explain", "retention", "requests")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    art30 = sub.add_parser("art30", help="print the Art. 30(1) GDPR record of processing activities")
    art30.add_argument("--json", action="store_true", help="the record as JSON instead of text")
    explain = sub.add_parser("explain", help="what a registration would send to whom, withhold and why "
                                             "(sends nothing; JSON)")
    explain.add_argument("--tld", required=True, help="top-level domain, e.g. se")
    explain.add_argument("--registrant", type=Path, required=True, help="registrant JSON file")
    retention = sub.add_parser("retention", help="the retention purge (as POST /v1/retention/purge)")
    rsub = retention.add_subparsers(dest="retention_cmd", required=True)
    purge = rsub.add_parser("purge", help="delete the sealed values of entries older than their purpose's period "
                            "(entries and the tree stay verifiable)")
    purge.add_argument("--dry-run", action="store_true", help="count what would be purged; delete nothing")
    purge.add_argument("--json", action="store_true", help="the whole report as JSON (with the entry ids)")
    purge.add_argument("--quiet", action="store_true", help="no progress display")
    requests = sub.add_parser("requests", help="data-subject requests (as GET /v1/requests)")
    qsub = requests.add_subparsers(dest="requests_cmd", required=True)
    rlist = qsub.add_parser("list", help="list requests with their kind, state and deadline")
    rlist.add_argument("--state", choices=["open", "closed"])
    rlist.add_argument("--json", action="store_true")
    show = qsub.add_parser("show", help="one request with its candidates and events (JSON)")
    show.add_argument("id")


def _read_registrant(path: Path) -> Registrant | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"cannot read {path}: {type(exc).__name__}", file=sys.stderr)
        return None
    if isinstance(data, dict) and isinstance(data.get("registrant"), dict):
        data = data["registrant"]
    try:
        return Registrant.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        for e in exc.errors(include_input=False):
            print(f"invalid registrant: {'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}",
                  file=sys.stderr)
        return None


def _lines(label: str, items: list[str]) -> list[str]:
    return [label, *(f"  {i}" for i in items or ["none"]), ""]


def art30_text(r: dict[str, Any]) -> str:
    """The record, readable in a terminal (``--json`` gives all of it)."""
    c, sa = r["controller"], r["supervisory_authority"]
    out = [r["record"], f"generated {r['generated_at']}", ""]
    if c.get("placeholder"):
        out += ["NOTE: the controller's details are placeholders (config/controller.yaml)", ""]
    org = f" ({c['organisation_number']})" if c.get("organisation_number") else ""
    out += _lines("Controller:", [f"{c['name']}{org}, {c['address']}, {c['email']}"])
    if r.get("dpo"):
        out += _lines("Data protection officer:", [f"{r['dpo']['name']}, {r['dpo']['email']}"])
    out += _lines("Supervisory authority:", [f"{sa['name']} ({sa['short_name']}), {sa['url']}"])
    out += _lines("Purposes:", [
        f"{p['purpose']}: {p['description']} | basis: {p['lawful_basis'] or '-'} | retention: "
        f"{p['period_months'] or '-'} months | recipients: {', '.join(p['recipients']) or '-'}"
        for p in r["purposes"]])
    out += _lines("Categories of data subjects:", list(r["categories_of_data_subjects"]))
    out += _lines("Categories of personal data:", [f"{f['field']}: {f['category']}"
                                                   for f in r["categories_of_personal_data"]])
    out.append("Recipients by category:")
    for kind, rows in r["recipients_by_category"].items():
        out.append(f"  {kind}:")
        out += [f"    {p['recipient']}: {p['name']} ({p['country']}, {p['role']}"
                f"{', third country' if p['third_country'] else ''}{'' if p['enabled'] else ', disabled'})"
                f" sends: {', '.join(p['fields']) or 'nothing'}" for p in rows]
    out.append("")
    out += _lines("Third-country transfers:", [
        f"{t['recipient']} ({t['country']}): {t['category']}"
        + (f", Art. {t['article']}" if t["article"] else "") + (f": {t['instrument']}" if t["instrument"] else "")
        + ("" if t["confirmed"] else " [unconfirmed]") for t in r["third_country_transfers"]])
    ret = r["retention"]
    out += _lines(f"Retention (measured from {ret['measured_from']}):", [
        f"{p}: {v['period_months']} months ({v['criteria']})" for p, v in ret["purposes"].items()])
    out += _lines("Security measures:", [f"{m['measure']}: {m['detail']}" for m in r["security_measures"]])
    return "\n".join(out).rstrip() + "\n"


def retention_text(report: dict[str, Any]) -> str:
    verb = "would purge" if report["dry_run"] else "purged"
    count = report["expired"] if report["dry_run"] else report["purged"]
    out = [f"{verb} the values of {count} of {report['scanned']} entries (at {report['at']}, periods from "
           f"{report['measured_from']})"]
    out += [f"  {p}: {v['expired']} expired (period {v['period_months']} months)"
            for p, v in report["purposes"].items()]
    out += [f"  warning: purpose {p} has no retention period: {n} entries kept"
            for p, n in sorted(report["unconfigured_purposes"].items())]
    return "\n".join(out) + "\n"


async def _retention(rights: RightsService, args: argparse.Namespace) -> int:
    label = f"retention purge{' (dry run)' if args.dry_run else ''}: scanning the ledger"
    with tracking(label, quiet=args.quiet) as progress:
        report = await rights.retention(dry_run=args.dry_run, progress=progress)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(retention_text(report), end="")
    return 0


async def _requests(rights: RightsService, args: argparse.Namespace) -> int:
    if args.requests_cmd == "show":
        print(json.dumps(await rights.get(args.id), indent=2, ensure_ascii=False))
        return 0
    rows = await rights.list(args.state)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        print(f"{r['id']}  {r['kind']:<13} {r['state']:<6} opened {r['opened_at']}  deadline {r['deadline']}")
    print(f"{len(rows)} request{'s' if len(rows) != 1 else ''}")
    return 0


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_ledger, open_rights, open_store

    policies = load_policies(settings.config_dir)
    registrant = None
    if args.cmd == "explain":
        registrant = _read_registrant(args.registrant)
        if registrant is None:
            return 2
    store = await open_store(settings)
    try:
        rights = open_rights(settings, store, open_ledger(settings, store), policies)
        if args.cmd == "retention":
            return await _retention(rights, args)
        if args.cmd == "requests":
            return await _requests(rights, args)
        if args.cmd == "art30":
            record = await rights.art30()
            if args.json:
                print(json.dumps(record, indent=2, ensure_ascii=False))
            else:
                print(art30_text(record), end="")
            return 0
        assert registrant is not None
        try:
            plan = rights.explain(registrant, args.tld)
        except (InputError, PolicyRefusal) as err:
            print(f"{err.title}: {err.detail}", file=sys.stderr)
            return 1
        print(json.dumps(plan, indent=2, ensure_ascii=False))
        return 0
    finally:
        await store.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))
