"""``gateway ledger …`` and ``gateway keys …``: verify, checkpoint, prove, audit; rotate, retire, list.

``verify`` needs only the store, the checkpoint public key and the retention periods: it is what an
auditor with database access runs.  ``audit`` needs only HTTP, a token and a checkpoint the auditor kept:
it is the rollback check for everyone else (exit 0 consistent, 1 refuted, 2 could not check).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.cli.progress import bar, tracking
from gateway.errors import ConfigError, DecryptionFailed
from gateway.ledger.audit import AuditFailed, check_extension, load_checkpoint, refutation
from gateway.ledger.checkpoint import SignedCheckpoint, load_or_create_signing_key, verify_checkpoint
from gateway.ledger.keys import KeyRing, ring_lock
from gateway.rights.config import load_retention
from gateway.services.ledger import Ledger, RetentionRule, verify_store
from gateway.services.verify import PurposeRule, Source
from gateway.settings import Settings

#: Exit codes of ``gateway ledger audit``.
AUDIT_OK, AUDIT_REFUTED, AUDIT_UNCHECKED = 0, 1, 2


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = sub.add_parser("ledger", help="the disclosure ledger: verify, checkpoint, prove")
    lsub = ledger.add_subparsers(dest="ledger_cmd", required=True)
    verify = lsub.add_parser("verify", help="recompute every hash and checkpoint; name the first bad entry")
    verify.add_argument("--public-key", type=Path, help="checkpoint public key (PEM); default: from the signing key")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    verify.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="processes hashing the leaves, each a range of them (default: the CPU count, "
                        f"{os.cpu_count() or 1} here); 1: all in this process")
    verify.add_argument("--config-dir", type=Path,
                        help="where retention.yaml is (default: GATEWAY_CONFIG_DIR); values missing before their "
                        "purpose's retention period ran out are reported")
    lsub.add_parser("checkpoint", help="issue a signed checkpoint now and print it")
    prove = lsub.add_parser("prove", help="inclusion proof of an entry against a checkpoint (JSON)")
    prove.add_argument("--entry", required=True)
    prove.add_argument("--size", type=int, required=True)
    cons = lsub.add_parser("consistency", help="consistency proof between two checkpoints (JSON)")
    cons.add_argument("--from", dest="old", type=int, required=True)
    cons.add_argument("--to", dest="new", type=int, required=True)
    lsub.add_parser("public-key", help="print the checkpoint public key (PEM)")
    audit = lsub.add_parser(
        "audit", help="rollback check against a running gateway: prove a checkpoint you kept is in its head",
        description="Asks the gateway at --url for a consistency proof from the kept checkpoint's size and root "
        "to its current head, and checks the head's signature and the proof here.  Exit 0: consistent; 1: "
        "refuted (rollback, fork, bad signature); 2: could not check (network, token, file).")
    audit.add_argument("--checkpoint", type=Path, required=True,
                       help="the kept checkpoint: the JSON the API serves for one (an item of GET "
                       "/v1/ledger/checkpoints, or the POST answer), or the signed note `ledger checkpoint` prints")
    audit.add_argument("--url", required=True, help="the gateway's base URL, e.g. https://gateway.example:8080")
    audit.add_argument("--public-key", type=Path,
                       help="checkpoint public key (PEM); default: the gateway's, accepted only if it verifies the "
                       "kept checkpoint")
    audit.add_argument("--token-file", type=Path,
                       help="file holding an auditor or privacy bearer token (default: GATEWAY_TOKEN); never "
                       "on the command line, where other users can read it")
    audit.add_argument("--update", action="store_true",
                       help="after a successful check, replace the checkpoint file by the new signed head")
    audit.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    keys = sub.add_parser("keys", help="key-encryption keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    rot = ksub.add_parser("rotate", help="new active KEK; re-wrap every subject key; entries untouched",
                          description="Safe while gateways run: each one wraps new data keys under the ring "
                          "file's active key as it is at that moment.")
    rot.add_argument("--retire-old", action="store_true",
                     help="then retire every old KEK as `keys retire` does (makes shredded subjects' keys in old "
                     "backups unreadable)")
    rot.add_argument("--grace", type=float, metavar="SECONDS",
                     help="with --retire-old: how long in-flight registrations may take (default: "
                     "GATEWAY_KEY_RETIRE_GRACE_S)")
    ret = ksub.add_parser(
        "retire", help="remove an old KEK once the store holds no data key wrapped with it",
        description="Re-wraps any data key still under KID (a gateway may have made one while a rotation ran), "
        "waits --grace seconds, counts again in the store and removes KID only at zero.  Exit 0: retired; 3: "
        "refused, data keys are still wrapped with KID (the ring keeps it); 2: KID is active or unknown.")
    ret.add_argument("kid")
    ret.add_argument("--grace", type=float, metavar="SECONDS",
                     help="how long in-flight registrations may take (default: GATEWAY_KEY_RETIRE_GRACE_S)")
    ksub.add_parser("list", help="the ring's key ids, the active one, and the live data keys wrapped with each")


async def _verify(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_store

    if args.public_key:
        public_key = serialization.load_pem_public_key(args.public_key.read_bytes())
    else:
        public_key = load_or_create_signing_key(settings.resolved_signing_key()).public_key
    config_dir = args.config_dir or settings.config_dir
    retention = None
    if (config_dir / "retention.yaml").exists():
        retention = retention_rule(config_dir)
    else:  # e.g. an auditor's copy of the database without the configuration
        print(f"warning: no retention.yaml in {config_dir}: values missing from entries are taken for retention "
              "purges, not checked against their periods", file=sys.stderr)
    source = (Source("postgres", settings.database_url) if settings.database_url
              else Source("sqlite", str(settings.resolved_db())))
    store = await open_store(settings)
    try:
        head = await store.head()
        with bar("verifying", quiet=args.quiet) as progress:
            task = progress.add_task("leaves", total=head.size)
            report = await verify_store(store, public_key,
                                        lambda done, total: progress.update(task, completed=done, total=total),
                                        retention=retention, jobs=max(1, args.jobs), source=source,
                                        preload=RETENTION_MODULES)
    finally:
        await store.close()
    if report.ok:
        print(f"ok: {report.entries} entries, {report.checkpoints} checkpoints verified")
        return 0
    where = ""
    if report.bad_leaf_index is not None or report.bad_entry_id is not None:
        where = f" (leaf {report.bad_leaf_index}, entry {report.bad_entry_id or 'unreadable id'})"
    print(f"CORRUPT: {report.problem}{where}", file=sys.stderr)
    return 1


#: What a verifying process imports to unpickle :func:`retention_rule`'s rule (once, before it forks).
RETENTION_MODULES = ("gateway.rights.config",)


def retention_rule(config_dir: Path) -> RetentionRule:
    """The retention job's rule from ``retention.yaml``: when an entry's values may first be purged.

    A table of the configured purposes' own ``expires`` (the retention job's arithmetic, not a copy),
    which pickles, so ``verify --jobs`` can hand it to each process."""
    config = load_retention(config_dir)
    return PurposeRule({purpose: cfg.expires for purpose, cfg in config.purposes.items()})


# -- the rollback check -------------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        token = Path(args.token_file).read_text().strip()
    else:
        token = os.environ.get("GATEWAY_TOKEN", "").strip()
    if not token:
        raise ConfigError("a bearer token is needed: --token-file FILE or GATEWAY_TOKEN")
    return token


def _load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the checkpoint public key must be Ed25519")
    return key


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _write_checkpoint(path: Path, signed: SignedCheckpoint) -> None:
    """Replace the kept checkpoint atomically: a crash leaves the old one or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(signed.to_json(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def audit(args: argparse.Namespace) -> int:
    """``gateway ledger audit``: 0 when the gateway proves the kept checkpoint is in its signed head, 1 when
    its answer refutes it (rollback, fork, bad signature), 2 when no check was possible."""
    try:
        kept = load_checkpoint(args.checkpoint.read_text())
        token = _token(args)
        key = _load_public_key(args.public_key.read_bytes()) if args.public_key else None
        url = httpx.URL(args.url)
    except (OSError, ValueError, ConfigError, httpx.InvalidURL) as exc:
        print(f"cannot audit: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return AUDIT_UNCHECKED
    cp = kept.checkpoint
    if url.scheme != "https" and url.host not in ("127.0.0.1", "::1", "localhost"):
        print("warning: the token goes to the gateway unencrypted (http://); use https:// beyond this host",
              file=sys.stderr)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=args.timeout) as client:
            if key is None:
                resp = client.get("/v1/ledger/public-key")
                resp.raise_for_status()
                key = _load_public_key(str(resp.json()["public_key_pem"]).encode())
            if not verify_checkpoint(kept, key):
                whose = "the given" if args.public_key else "the gateway's"
                print(f"REFUTED: the kept checkpoint (size {cp.size}, key {kept.key_id}) is not signed by {whose} "
                      "key", file=sys.stderr)
                return AUDIT_REFUTED
            resp = client.get("/v1/ledger/audit", params={"size": str(cp.size),
                                                          "root": base64.b64encode(cp.root).decode()})
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot audit: the gateway did not answer usefully ({type(exc).__name__})", file=sys.stderr)
        return AUDIT_UNCHECKED
    problem = _problem(resp) if resp.status_code >= 400 else {}
    if resp.status_code == 409 and problem.get("code") == "ledger_inconsistent":
        print(f"REFUTED: {refutation(problem, kept)}", file=sys.stderr)
        return AUDIT_REFUTED
    if problem.get("code") == "proof_unavailable":  # it signed that tree once; not proving it now is a finding
        print(f"REFUTED: the gateway cannot prove its tree at size {cp.size} is in its head: "
              f"{problem.get('detail', '')}", file=sys.stderr)
        return AUDIT_REFUTED
    if resp.status_code != 200:
        code = problem.get("code", "no problem code")
        print(f"cannot audit: the gateway answered {resp.status_code} ({code})", file=sys.stderr)
        return AUDIT_UNCHECKED
    try:
        answer = resp.json()
        if not isinstance(answer, dict):
            raise AuditFailed("malformed", "the answer is not a JSON object")
        head = check_extension(kept, answer, key)
    except ValueError:
        print("REFUTED: the gateway's answer is not JSON", file=sys.stderr)
        return AUDIT_REFUTED
    except AuditFailed as exc:
        print(f"REFUTED ({exc.kind}): {exc}", file=sys.stderr)
        return AUDIT_REFUTED
    new = head.checkpoint
    print(f"ok: the checkpoint at size {cp.size} is in the gateway's head at size {new.size} "
          f"(signed {head.to_json()['timestamp']} by key {head.key_id})")
    if args.update:
        _write_checkpoint(args.checkpoint, head)
        print(f"kept the new head in {args.checkpoint}")
    return AUDIT_OK


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
            if entry is None or entry.leaf_hash is None or entry.leaf_index is None:
                print(f"error: no such entry in the ledger: {args.entry}", file=sys.stderr)
                return 1
            size = (await store.head()).size
            if not entry.leaf_index < args.size <= size:
                print(f"error: --size {args.size}: the entry is leaf {entry.leaf_index}, so the size must be "
                      f"{entry.leaf_index + 1}..{size} (the tree has {size} leaves)", file=sys.stderr)
                return 2
            proof = await ledger.inclusion(entry, args.size)
            print(json.dumps({"leaf_index": entry.leaf_index, "tree_size": args.size,
                              "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
                              "proof": [base64.b64encode(p).decode() for p in proof]}))
        elif args.ledger_cmd == "consistency":
            size = (await store.head()).size
            if not 0 < args.old <= args.new <= size:
                print(f"error: --from {args.old} --to {args.new}: need 0 < from <= to <= {size} (the tree has "
                      f"{size} leaves)", file=sys.stderr)
                return 2
            proof = await ledger.consistency(args.old, args.new)
            print(json.dumps({"from": args.old, "to": args.new,
                              "proof": [base64.b64encode(p).decode() for p in proof]}))
        return 0
    finally:
        await store.close()


#: Exit codes of ``gateway keys …``: done; KID active or unknown (or a GATEWAY_KEK ring); refused because the
#: store still holds data keys wrapped with the key to retire.
KEYS_OK, KEYS_USAGE, KEYS_IN_USE = 0, 2, 3


async def _retire(ledger: Ledger, path: Path, kid: str, grace_s: float) -> int:
    """Retire one KEK (the caller holds the ring lock); prints the outcome, returns the exit code."""
    try:
        with tracking(f"re-wrapping data keys still under {kid}") as progress:
            outcome = await ledger.retire(path, kid, grace_s=grace_s, progress=progress)
    except ValueError as exc:
        print(f"error: cannot retire: {exc}", file=sys.stderr)
        return KEYS_USAGE
    if not outcome.retired:
        print(f"refused: {outcome.remaining} data keys are still wrapped with {kid} (they did not open or kept "
              f"appearing); {kid} stays in the ring. Check `gateway keys list`, then retry.", file=sys.stderr)
        return KEYS_IN_USE
    print(f"retired {kid}: no data key is wrapped with it ({outcome.moved} re-wrapped on the way)")
    return KEYS_OK


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_ledger, open_store

    if settings.kek is not None and args.keys_cmd != "list":
        print("the KEK comes from GATEWAY_KEK: rotate it where it is kept", file=sys.stderr)
        return KEYS_USAGE
    path = settings.resolved_kek()
    grace = getattr(args, "grace", None)
    grace_s = settings.key_retire_grace_s if grace is None else max(0.0, grace)
    store = await open_store(settings)
    try:
        if args.keys_cmd == "list":
            ring = open_ledger(settings, store).ring
            counts = await store.wrapped_key_counts()
            for kid in sorted(set(ring.keys) | set(counts)):
                state = "active" if kid == ring.active else ("old" if kid in ring.keys else "MISSING FROM RING")
                print(f"{kid}  {state:<17}  {counts.get(kid, 0)} data keys")
            return KEYS_OK
        with ring_lock(path):
            ledger = open_ledger(settings, store)
            if args.keys_cmd == "retire":
                return await _retire(ledger, path, args.kid, grace_s)
            old: KeyRing = KeyRing.from_file(path)
            new = old.with_new_active_key()
            new.save(path)  # save first: a crash mid-way leaves keys wrapped by either, both in the ring
            try:
                with tracking(f"re-wrapping subject keys under {new.active}") as progress:
                    count = await ledger.rotate(new, progress=progress)
            except DecryptionFailed:
                print(f"error: a stored data key does not open under its key; re-wrapping stopped there. {new.active} "
                      "is active and the old keys stay in the ring (`gateway keys list` shows what each holds)",
                      file=sys.stderr)
                return 1
            print(f"re-wrapped {count} subject keys under {new.active}")
            code = KEYS_OK
            if args.retire_old:
                for kid in sorted(old.keys):
                    code = max(code, await _retire(ledger, path, kid, grace_s))
            return code
    finally:
        await store.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.cmd == "ledger" and args.ledger_cmd == "audit":
        return audit(args)  # over HTTP: no store, no keys of the gateway's
    if args.cmd == "ledger":
        return asyncio.run(_ledger(settings, args))
    return asyncio.run(_keys(settings, args))
