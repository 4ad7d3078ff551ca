"""``gateway worker``: delivery as a process of its own, and ``gateway run``'s supervision of one.

Delivery used to share the API's process and event loop: EPP round trips, XML parsing and the ledger
writes of each outcome took their share of the loop that answers registrations (40% of the process's CPU
at load).  A ``gateway worker`` runs only the delivery side (``gateway.compose.build_worker``: the
scheduler with its bulkheads and leases, the registry poll workers, escrow deposits, webhooks) on the
configured store; any number of them may run against one store, on one host or several (PostgreSQL),
because every claim is fenced by its token and lease.  An API process with ``GATEWAY_DELIVERY=external``
wakes the workers of its host through a named pipe (``gateway.delivery.wake``); the others find due rows
at their next poll (``GATEWAY_WORKER_POLL_S``).

SIGTERM or SIGINT stops it within the scheduler's bounded shutdown (``GATEWAY_WORKER_SHUTDOWN_GRACE_S``,
then rows still in flight are handed back).  It exits 1 when its delivery loop crashed or stalled, so a
supervisor (``gateway run``, Docker's restart policy, systemd) starts a fresh one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import Role, TokenStore, hash_token, require
from gateway.errors import GatewayError, WorkerUnavailable
from gateway.http.problems import problem_response
from gateway.logs import delivery_metrics
from gateway.settings import Settings

log = structlog.get_logger("gateway.worker")

COMMANDS = ("worker",)
#: the line a worker prints on stdout once it delivers (``gateway run`` waits for it)
READY = "delivery worker: "
#: how often the worker checks its delivery loop and (under ``gateway run``) that its parent still lives
WATCH_S = 0.5
WORKER_START_S = 30.0
#: a stopping worker's grace beyond the scheduler's own: close pools, the store, the HTTP side
STOP_MARGIN_S = 5.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="deliver the outbox (EPP, partners, escrow, webhooks) in this process; "
                                      "any number may run against one store")
    # set by ``gateway run`` for the worker it supervises: stop when that process is gone (a kill -9 of
    # ``gateway run`` must not leave workers behind), and leave out what its development API leaves out
    p.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--development", action="store_true", help=argparse.SUPPRESS)


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(serve_worker(settings, parent=args.parent, development=args.development))


# -- the worker process ------------------------------------------------------------------------------------

_TOKENS = web.AppKey("worker_tokens", TokenStore)
_SCRAPE = web.AppKey("worker_scrape_sha256", str)


async def _healthz(request: web.Request) -> web.Response:
    """Liveness: 503 once the delivery loop crashed or has not gone round within its lease."""
    alive = delivery_metrics().workers_alive()
    return web.json_response({"status": "ok" if alive else "stalled", "pid": os.getpid()},
                             status=200 if alive else 503)


async def _metrics(request: web.Request) -> web.Response:
    """This process's delivery counters and gauges (deliveries, EPP latency, breakers, rows in flight),
    for the same tokens as the API's ``/metrics``: the scrape token's SHA-256 or a staff token."""
    header = request.headers.get("Authorization", "")
    scrape = request.app.get(_SCRAPE)
    if not (scrape and header.startswith("Bearer ")
            and hmac.compare_digest(hash_token(header[7:].strip()), scrape)):
        try:
            require(request.app[_TOKENS].authenticate(header or None), Role.PRIVACY, Role.AUDITOR)
        except GatewayError as exc:  # 401/403 as the API answers them
            return problem_response(exc, request)
    return web.Response(body=generate_latest(delivery_metrics().registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def _store_name(settings: Settings) -> str:
    return "postgresql" if settings.database_url else f"sqlite {settings.resolved_db()}"  # never the DSN


async def serve_worker(settings: Settings, *, parent: int | None = None, development: bool = False) -> int:
    """Deliver until SIGTERM/SIGINT (0), the parent ``gateway run`` is gone (0), or the delivery loop
    crashed or stalled (1)."""
    from gateway.compose import build_worker

    app, _ = await build_worker(settings, development=development)
    if settings.worker_http_port is not None:
        app[_TOKENS] = TokenStore.load(settings.resolved_tokens())
        if settings.metrics_token_sha256:
            app[_SCRAPE] = settings.metrics_token_sha256
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()  # starts the delivery jobs
    code = 0
    try:
        where = ""
        if settings.worker_http_port is not None:
            site = web.TCPSite(runner, settings.host, settings.worker_http_port)
            await site.start()
            port = runner.addresses[0][1] if runner.addresses else settings.worker_http_port  # 0: any free
            where = f", /healthz and /metrics on http://{settings.host}:{port}"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"{READY}pid {os.getpid()}, {_store_name(settings)}{where}", flush=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_S)
            if parent is not None and os.getppid() != parent:
                log.warning("worker.parent_gone")
                break
            if not delivery_metrics().workers_alive():
                log.error("worker.delivery_loop_stalled")
                code = 1
                break
    finally:
        await runner.cleanup()  # the scheduler's bounded shutdown, then pools and store
    if code:
        raise WorkerUnavailable("the delivery loop crashed or stalled; a fresh worker takes over its rows")
    return 0


# -- supervision under ``gateway run`` ---------------------------------------------------------------------


@dataclass(eq=False)
class WorkerSupervisor:
    """One ``gateway worker`` child of ``gateway run``, started again whenever it ends (after a pause that
    doubles up to ``max_pause_s`` while it keeps dying young) until ``stop``.

    The child gets its own session, so a Ctrl-C at the terminal reaches only ``gateway run``, which then
    stops it with SIGTERM and waits for its bounded shutdown; the child watches its parent and stops too
    if ``gateway run`` is killed outright.  Its settings are the environment's, with ``env`` on top."""

    env: dict[str, str]
    stop_after_s: float
    development: bool = False
    max_pause_s: float = 10.0
    restarts: int = 0
    #: what the running worker said when it was ready (its pid, its store)
    ready_line: str = ""
    proc: asyncio.subprocess.Process | None = None
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False
    _forwarders: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        """Start the first worker and return once it delivers (or raise ``WorkerUnavailable``)."""
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name="gateway-worker-supervisor")

    async def _spawn(self) -> None:
        argv = [sys.executable, "-m", "gateway", "worker", "--parent", str(os.getpid())]
        if self.development:
            argv.append("--development")
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **self.env}, start_new_session=True,
        )
        self.proc = proc
        assert proc.stdout is not None
        line = b""
        with contextlib.suppress(TimeoutError):
            line = await asyncio.wait_for(proc.stdout.readline(), WORKER_START_S)
        if not line.decode(errors="replace").startswith(READY):
            await self._terminate(proc)
            raise WorkerUnavailable(f"the delivery worker did not start (exit {proc.returncode}; its log "
                                    "is on stderr)")
        self.ready_line = line.decode(errors="replace").rstrip("\n")
        if self.restarts or self._task is not None:  # the first one's line is ``gateway run``'s to print
            print(self.ready_line, flush=True)
        task = asyncio.create_task(self._forward(proc))
        self._forwarders.add(task)
        task.add_done_callback(self._forwarders.discard)

    @staticmethod
    async def _forward(proc: asyncio.subprocess.Process) -> None:
        """Whatever else the worker prints on stdout, so its pipe never fills."""
        assert proc.stdout is not None
        async for line in proc.stdout:
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()

    async def _supervise(self) -> None:
        pause = 0.5
        while True:
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                pause = 0.5
            log.warning("run.worker_exited", pid=self.proc.pid, exit_code=code, restart_in_s=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.max_pause_s)
            if self._stopping:
                return
            try:
                await self._spawn()
            except Exception as exc:  # did not start (or could not be started): pause longer, try again
                log.error("run.worker_start_failed", error_type=type(exc).__name__)
                continue  # waits on the failed process (already ended), then pauses again
            self.restarts += 1
            log.info("run.worker_restarted", pid=self.pid, restarts=self.restarts)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM, then SIGKILL after ``stop_after_s``: the scheduler's grace plus closing up."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_after_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.proc is not None:
            await self._terminate(self.proc)
        for task in list(self._forwarders):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 1.0)
