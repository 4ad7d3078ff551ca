"""``gateway`` command line: serve, run (gateway + local registry sandbox), check-config, hash-token."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
from pathlib import Path

from aiohttp import web

from gateway.auth import hash_token
from gateway.cli import ledger as ledger_cli
from gateway.cli import rights as rights_cli
from gateway.cli import staff as staff_cli
from gateway.errors import ConfigError
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="run the gateway (settings from GATEWAY_* environment)")
    sub.add_parser("run", help="development: the gateway plus a local registry sandbox, with dev tokens")
    check = sub.add_parser("check-config", help="load and validate the policy files")
    check.add_argument("--config-dir", type=Path)
    sub.add_parser("hash-token", help="read a token on stdin, print its SHA-256 for the tokens file")
    ledger_cli.add_parsers(sub)
    staff_cli.add_parsers(sub)
    rights_cli.add_parsers(sub)
    args = parser.parse_args(argv)
    configure()
    if args.cmd == "extract":  # offline: needs only the extract and the public key
        return rights_cli.run(args)
    try:
        settings = Settings()
        if args.cmd == "check-config":
            policies = load_policies(args.config_dir or settings.config_dir)
            print(f"ok: {len(policies.recipients)} recipients, TLDs: {', '.join(sorted(policies.by_tld))}")
            return 0
        if args.cmd == "hash-token":
            token = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("token: ")
            print(hash_token(token))
            return 0
        if args.cmd in ("ledger", "keys"):
            return ledger_cli.run(settings, args)
        if args.cmd in staff_cli.COMMANDS:
            return staff_cli.run(settings, args)
        asyncio.run(_serve(settings, with_sandbox=args.cmd == "run"))
        return 0
    except ConfigError as exc:
        print(f"configuration error: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
