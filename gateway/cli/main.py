"""``gateway`` command line: serve, run (gateway + local registry sandbox), init, check-config, hash-token,
and the staff and auditor commands.

Every failure ends as one line on stderr and a non-zero exit: 2 for configuration and input files (and
usage), 1 for everything else; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
from importlib import metadata
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from gateway.auth import hash_token
from gateway.cli import init as init_cli
from gateway.cli import ledger as ledger_cli
from gateway.cli import rights as rights_cli
from gateway.cli import staff as staff_cli
from gateway.errors import ConfigError, GatewayError
from gateway.logs import configure
from gateway.policy.loader import load_policies
from gateway.settings import Settings


async def _serve(settings: Settings, *, with_sandbox: bool) -> None:
    from gateway.compose import build

    sandbox = None
    if with_sandbox:
        from adapters.epp.sandbox.server import RegistrySandbox
        from adapters.epp.tls import ensure_dev_pki

        pki = ensure_dev_pki(settings.resolved_pki())
        sandbox = RegistrySandbox(
            host=settings.sandbox_host, port=settings.sandbox_port, pki=pki,
            client_id=settings.registrar_client_id, password=settings.registrar_password,
            validate_schemas=True,
        )
        await sandbox.start()
        print(f"registry sandbox: EPP over TLS on {settings.sandbox_host}:{sandbox.port}", flush=True)
    app, _ = await build(settings, dev_tokens=with_sandbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    print(f"gateway: http://{settings.host}:{settings.port} (openapi: /openapi.json)", flush=True)
    if with_sandbox:
        print(f"development tokens: {settings.var_dir / 'dev-tokens'}/<role>", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    if sandbox is not None:
        await sandbox.stop()


def version() -> str:
    try:
        return metadata.version("registrant-gateway")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="run the gateway (settings from GATEWAY_* environment)")
    sub.add_parser("run", help="development: the gateway plus a local registry sandbox, with dev tokens")
    init_cli.add_parser(sub)
    check = sub.add_parser("check-config", help="load and validate the policy files")
    check.add_argument("--config-dir", type=Path)
    sub.add_parser("hash-token", help="read a token on stdin, print its SHA-256 for the tokens file")
    ledger_cli.add_parsers(sub)
    staff_cli.add_parsers(sub)
    rights_cli.add_parsers(sub)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "extract":  # offline: needs only the extract and the public key
        return rights_cli.run(args)
    settings = Settings()
    if args.cmd == "check-config":
        config_dir = args.config_dir or settings.config_dir
        policies = load_policies(config_dir)
        print(f"ok: {len(policies.recipients)} recipients, TLDs: {', '.join(sorted(policies.by_tld))} "
              f"({config_dir})")
        return 0
    if args.cmd == "hash-token":
        token = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("token: ")
        print(hash_token(token))
        return 0
    if args.cmd == "init":
        return init_cli.run(settings, args)
    if args.cmd in ("ledger", "keys"):
        return ledger_cli.run(settings, args)
    if args.cmd in staff_cli.COMMANDS:
        return staff_cli.run(settings, args)
    asyncio.run(_serve(settings, with_sandbox=args.cmd == "run"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure()
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"configuration error: {_one_line(exc.detail)}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        title, detail = _one_line(exc.title), _one_line(exc.detail)
        print(f"error: {title}" + (f": {detail}" if detail and detail != title else ""), file=sys.stderr)
        return 1
    except ValidationError as exc:  # a GATEWAY_* setting
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"configuration error: GATEWAY_{where.upper()}: {_one_line(first['msg'])}"
              f"{f' (and {exc.error_count() - 1} more)' if exc.error_count() > 1 else ''}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{_one_line(exc.strerror or exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, never a traceback
        print(f"error: {type(exc).__name__}: {_one_line(exc) or 'unexpected failure'}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
