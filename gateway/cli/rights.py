"""``gateway extract verify FILE --public-key PEMFILE``: check an Art. 15 extract offline.

Needs nothing but the extract and the published checkpoint key: no store, no network.  Exit 0 if
valid, 1 with one line per problem on stderr if not, 2 if the files cannot be read.

Also runnable alone: ``python -m gateway.cli.rights extract verify FILE --public-key PEMFILE``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.rights.extract import verify_extract


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    extract = sub.add_parser("extract", help="Art. 15 register extracts")
    esub = extract.add_subparsers(dest="extract_cmd", required=True)
    verify = esub.add_parser("verify", help="verify an extract's signed checkpoint, leaf hashes and inclusion proofs")
    verify.add_argument("file", type=Path, help="the extract (JSON)")
    verify.add_argument("--public-key", type=Path, required=True, help="checkpoint public key (PEM)")


def run(args: argparse.Namespace) -> int:
    try:
        extract = json.loads(args.file.read_text(encoding="utf-8"))
        pem = args.public_key.read_bytes()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"cannot read input: {type(exc).__name__}", file=sys.stderr)
        return 2
    problems = verify_extract(extract, pem)
    if problems:
        for p in problems:
            print(f"INVALID: {p}", file=sys.stderr)
        return 1
    cp = extract["checkpoint"]
    print(f"ok: {len(extract['disclosures'])} disclosures verified against the checkpoint of size {cp['size']} "
          f"(key {cp['key_id']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_parsers(sub)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
