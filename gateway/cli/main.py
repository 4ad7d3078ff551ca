"""``gateway`` command line: serve, worker (delivery as a process of its own), run (gateway + delivery worker
+ local registry sandbox), init, check-config, hash-token, and the staff and auditor commands.

Every failure ends as one line on stderr and a non-zero exit: 2 for configuration and input files (and
usage), 1 for everything else; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from gateway.auth import hash_token
from gateway.cli import accounts as accounts_cli
from gateway.cli import init as init_cli
from gateway.cli import ledger as ledger_cli
from gateway.cli import outbox as outbox_cli
from gateway.cli import rights as rights_cli
from gateway.cli import staff as staff_cli
from gateway.cli import worker as worker_cli
from gateway.errors import ConfigError, GatewayError, SandboxUnavailable
from gateway.logs import configure
from gateway.policy.loader import load_policies
from gateway.settings import Settings

# -- the registry sandbox as a process of its own ---------------------------------------------------------
#
# ``gateway run`` used to serve the sandbox on its own event loop: a crash of the gateway took the
# registry's memory with it, so a crash test could not tell a forgetful gateway from a forgetful
# registry.  Now the sandbox is a child in its own session (a Ctrl-C or kill of the gateway's process
# group does not reach it), keeps its objects under ``var/sandbox/`` and is stopped when the gateway stops
# cleanly.  After a ``kill -9`` of the gateway it keeps running with everything it confirmed; the next
# ``gateway run`` finds it through its pid file and adopts it instead of fighting it for the port.

SANDBOX_READY = b"EPP sandbox listening on "
SANDBOX_START_S = 30.0
SANDBOX_STOP_S = 10.0


@dataclass
class SandboxProcess:
    pid: int
    port: int
    state_dir: Path
    proc: asyncio.subprocess.Process | None = None  # None: adopted from an earlier gateway

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "sandbox.pid"

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.returncode is None
        return _is_sandbox(self.pid, self.state_dir)

    async def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after ``SANDBOX_STOP_S``; the pid file goes with it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SANDBOX_STOP_S
        while self.alive() and loop.time() < deadline:
            if self.proc is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 0.1)
            else:
                await asyncio.sleep(0.1)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            if self.proc is not None:
                await self.proc.wait()
        self.pid_file.unlink(missing_ok=True)


def _is_sandbox(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is a live sandbox serving ``state_dir`` (not a recycled pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"adapters.epp.sandbox" in cmdline and str(state_dir).encode() in cmdline


def _adopt(state_dir: Path) -> SandboxProcess | None:
    try:
        recorded = json.loads((state_dir / "sandbox.pid").read_text())
        pid, port = int(recorded["pid"]), int(recorded["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return SandboxProcess(pid, port, state_dir) if _is_sandbox(pid, state_dir) else None


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


async def start_sandbox(settings: Settings) -> SandboxProcess:
    """Start (or adopt) the sandbox registry and return once it listens."""
    state_dir = (settings.var_dir / "sandbox").resolve()
    adopted = _adopt(state_dir)
    if adopted is not None:
        return adopted
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = state_dir / "sandbox.log"
    # the password through the environment, not argv (which any local user can read in ps)
    env = {**os.environ, "GATEWAY_SANDBOX_PASSWORD": settings.registrar_password}
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.epp.sandbox", "--host", settings.sandbox_host,
            "--port", str(settings.sandbox_port), "--pki-dir", str(settings.resolved_pki()),
            "--client-id", settings.registrar_client_id, "--state-dir", str(state_dir),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log_file, env=env,
            start_new_session=True,
        )
    assert proc.stdout is not None
    line = b""
    with contextlib.suppress(TimeoutError):
        line = await asyncio.wait_for(proc.stdout.readline(), SANDBOX_START_S)
    sandbox = SandboxProcess(proc.pid, 0, state_dir, proc)
    if not line.startswith(SANDBOX_READY):
        await sandbox.stop()
        why = _last_line(log_path) or f"no answer within {SANDBOX_START_S:.0f} s"
        raise SandboxUnavailable(f"{why} (log: {log_path})")
    sandbox.port = int(line.rsplit(b":", 1)[1])
    (state_dir / "sandbox.pid").write_text(json.dumps({"pid": proc.pid, "port": sandbox.port}))
    return sandbox


async def _serve(settings: Settings, *, with_sandbox: bool) -> None:
    """``gateway serve`` (the API; delivery as ``GATEWAY_DELIVERY`` says) or ``gateway run`` (the sandbox,
    the API and, unless ``GATEWAY_DELIVERY`` says otherwise, one supervised ``gateway worker``)."""
    from gateway.compose import build, load_endpoints

    sandbox = None
    # an endpoints file that names the registries' endpoints sends nothing to a sandbox: none is started
    if with_sandbox and not load_endpoints(settings, load_policies(settings.config_dir)).endpoints:
        sandbox = await start_sandbox(settings)
        how = "started" if sandbox.proc is not None else "still running from an earlier run, adopted"
        print(f"registry sandbox: EPP over TLS on {settings.sandbox_host}:{sandbox.port} "
              f"(pid {sandbox.pid}, {how}; state and log in {sandbox.state_dir})", flush=True)
        settings = settings.model_copy(update={"sandbox_port": sandbox.port})  # GATEWAY_SANDBOX_PORT=0: any free
    supervisor: worker_cli.WorkerSupervisor | None = None
    if with_sandbox and settings.delivery is None and settings.worker_enabled:
        settings = settings.model_copy(update={"delivery": "external"})  # ``gateway run``'s default
    try:
        app, _ = await build(settings, dev_tokens=with_sandbox)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        stop = asyncio.Event()  # before the line that says we are up: a signal right after it is a stop
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if with_sandbox and settings.delivery_mode() == "external":
            # after ``build``: the store is migrated and the development keys exist before the worker opens them
            supervisor = worker_cli.WorkerSupervisor(
                env={"GATEWAY_SANDBOX_PORT": str(settings.sandbox_port)}, development=True,
                stop_after_s=settings.worker_shutdown_grace_s + worker_cli.STOP_MARGIN_S,
            )
            await supervisor.start()
        print(f"gateway: http://{settings.host}:{settings.port} (openapi: /openapi.json)", flush=True)
        if with_sandbox:
            print(f"development tokens: {settings.var_dir / 'dev-tokens'}/<role>", flush=True)
        if supervisor is not None:
            print(f"{supervisor.ready_line} (restarted if it ends)", flush=True)
        await stop.wait()
        stopping = [runner.cleanup()]
        if supervisor is not None:
            stopping.append(supervisor.stop())
        await asyncio.gather(*stopping)
    finally:
        if supervisor is not None:
            await supervisor.stop()  # a failed start-up leaves no worker behind
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
    sub.add_parser("run", help="development: the gateway, a delivery worker process and a local registry "
                               "sandbox, with dev tokens")
    worker_cli.add_parser(sub)
    init_cli.add_parser(sub)
    check = sub.add_parser("check-config", help="load and validate the policy files")
    check.add_argument("--config-dir", type=Path)
    sub.add_parser("hash-token", help="read a token on stdin, print its SHA-256 for the tokens file")
    ledger_cli.add_parsers(sub)
    staff_cli.add_parsers(sub)
    rights_cli.add_parsers(sub)
    outbox_cli.add_parsers(sub)
    accounts_cli.add_parsers(sub)
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
    if args.cmd in outbox_cli.COMMANDS:
        return outbox_cli.run(settings, args)
    if args.cmd in accounts_cli.COMMANDS:
        return accounts_cli.run(settings, args)
    if args.cmd in worker_cli.COMMANDS:
        return worker_cli.run(settings, args)
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
