"""``gateway ledger …`` and ``gateway keys …``: verify, checkpoint, prove, rotate.

``verify`` needs only the store and the checkpoint public key: it is what an auditor runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gateway.ledger.checkpoint import load_or_create_signing_key
from gateway.ledger.keys import KeyRing
from gateway.services.ledger import verify_store
from gateway.settings import Settings


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = sub.add_parser("ledger", help="the disclosure ledger: verify, checkpoint, prove")
    lsub = ledger.add_subparsers(dest="ledger_cmd", required=True)
    verify = lsub.add_parser("verify", help="recompute every hash and checkpoint; name the first bad entry")
    verify.add_argument("--public-key", type=Path, help="checkpoint public key (PEM); default: from the signing key")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    lsub.add_parser("checkpoint", help="issue a signed checkpoint now and print it")
    prove = lsub.add_parser("prove", help="inclusion proof of an entry against a checkpoint (JSON)")
    prove.add_argument("--entry", required=True)
    prove.add_argument("--size", type=int, required=True)
    cons = lsub.add_parser("consistency", help="consistency proof between two checkpoints (JSON)")
    cons.add_argument("--from", dest="old", type=int, required=True)
    cons.add_argument("--to", dest="new", type=int, required=True)
    lsub.add_parser("public-key", help="print the checkpoint public key (PEM)")
    keys = sub.add_parser("keys", help="key-encryption keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    rot = ksub.add_parser("rotate", help="new active KEK; re-wrap every subject key; entries untouched")
    rot.add_argument("--retire-old", action="store_true",
                     help="drop the old KEKs afterwards (makes shredded subjects' keys in old backups unreadable)")


async def _verify(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_store

    if args.public_key:
        public_key = serialization.load_pem_public_key(args.public_key.read_bytes())
    else:
        public_key = load_or_create_signing_key(settings.resolved_signing_key()).public_key
    store = await open_store(settings)
    try:
        head = await store.head()
        with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      disable=args.quiet, transient=True) as bar:
            task = bar.add_task("leaves", total=head.size)
            report = await verify_store(store, public_key, lambda done, total: bar.update(task, completed=done))
    finally:
        await store.close()
    if report.ok:
        print(f"ok: {report.entries} entries, {report.checkpoints} checkpoints verified")
        return 0
    where = f" (leaf {report.bad_leaf_index}, entry {report.bad_entry_id})" if report.bad_entry_id else ""
    print(f"CORRUPT: {report.problem}{where}", file=sys.stderr)
    return 1


async def _ledger(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_ledger, open_store

    if args.ledger_cmd == "verify":
        return await _verify(settings, args)
    store = await open_store(settings)
    ledger = open_ledger(settings, store)
    try:
        if args.ledger_cmd == "public-key":
            print(ledger.signer.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
        elif args.ledger_cmd == "checkpoint":
            print((await ledger.checkpoint()).to_text(), end="")
        elif args.ledger_cmd == "prove":
            entry = await store.disclosure(args.entry)
            if entry is None or entry.leaf_hash is None:
                print("no such entry", file=sys.stderr)
                return 1
            proof = await ledger.inclusion(entry, args.size)
            print(json.dumps({"leaf_index": entry.leaf_index, "tree_size": args.size,
                              "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
                              "proof": [base64.b64encode(p).decode() for p in proof]}))
        elif args.ledger_cmd == "consistency":
            proof = await ledger.consistency(args.old, args.new)
            print(json.dumps({"from": args.old, "to": args.new,
                              "proof": [base64.b64encode(p).decode() for p in proof]}))
        return 0
    finally:
        await store.close()


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_ledger, open_store

    if settings.kek is not None:
        print("the KEK comes from GATEWAY_KEK: rotate it where it is kept", file=sys.stderr)
        return 2
    store = await open_store(settings)
    ledger = open_ledger(settings, store)
    try:
        old: KeyRing = ledger.ring
        new = old.with_new_active_key()
        path = settings.resolved_kek()
        new.save(path)  # save first: a crash mid-way leaves keys wrapped by either, both in the ring
        count = await ledger.rotate(new)
        if args.retire_old:
            final = new
            for kid in list(old.keys):
                final = final.without_key(kid)
            final.save(path)
        print(f"re-wrapped {count} subject keys under {new.active}")
        return 0
    finally:
        await store.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.cmd == "ledger":
        return asyncio.run(_ledger(settings, args))
    return asyncio.run(_keys(settings, args))
