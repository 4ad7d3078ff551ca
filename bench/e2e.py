"""End-to-end benchmark: registrations through a real gateway process against a raw EPP registrar, both
sending to the same TLS EPP sandbox, in interleaved rounds.

Three processes besides this one, so no side shares an interpreter (or its CPU) with another: the sandbox
registry (``python -m adapters.epp.sandbox``), the gateway (``gateway serve`` with a ``gateway worker`` process
delivering, as ``gateway run`` starts them; ``--delivery inprocess`` for one process) and the
baseline (``bench/raw_epp.py``: the raw EPP client on a pool of logged-in sessions, ``max_sessions`` as the
gateway's ``epp_max_sessions``, kept open across rounds).  Both sides register the same orders: ``--n``
``.se`` domains a round, each person (``--per-person`` consecutive orders share one) with one contact.  The
gateway reuses a person's contact and logs one disclosure per command; the baseline does what a registrar
without the gateway would do for the same orders: it creates each person's contact once, with their first
order, and reuses it for their later domains (and creates the registrar's own contact once).

After an untimed warm-up on both sides (sessions logged in, code paths hot), ``--rounds`` rounds run as
baseline, gateway, baseline, gateway, ...; each round uses fresh persons and domains.  Every figure is printed
as one line: the gateway's median over the rounds with min..max, the baseline's the same way, and the ratio
gateway/baseline where both sides have the figure (delivered/s, latency).  Delivered/s counts from the
first order sent to the last ``domain:create`` answered (the baseline) or logged as delivered (the gateway).
Loopback only; bounded in count (``--n`` ≤ 5000, ``--rounds`` ≤ 15) and time (300 s a round).

    .venv/bin/python bench/e2e.py [--n 150] [--rounds 3] [--concurrency 16] [--per-person 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import aiohttp
import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.epp.tls import ensure_dev_pki  # noqa: E402
from bench.raw_epp import CLIENT_ID, PASSWORD, order, pct  # noqa: E402
from gateway.auth import hash_token  # noqa: E402
from gateway.settings import Settings  # noqa: E402

ROUND_TIMEOUT_S = 300.0
READY = "EPP sandbox listening on "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iso_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@contextmanager
def child(argv: list[str], *, env: dict[str, str] | None = None, stdin: int | None = None,
          stdout: int | None = None, log: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """A child process stopped (SIGTERM, then SIGKILL after 20 s) when the block ends."""
    err: IO[str] | int = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=stdin, stdout=stdout or subprocess.DEVNULL,
                            stderr=err, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if not isinstance(err, int):
            err.close()


def sandbox_port(proc: subprocess.Popen[str]) -> int:
    """The port the sandbox printed once it listens (it binds ``--port 0``)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the sandbox prints nothing else on stdout; it exits on failure (EOF)
    if not line.startswith(READY):
        raise SystemExit(f"the sandbox did not start (see its log): {line!r}")
    return int(line.strip().rsplit(":", 1)[1])


class Gateway:
    """The gateway side: orders over HTTP, deliveries read back from the disclosure log with one cursor."""

    def __init__(self, url: str, token: str, privacy: str, concurrency: int) -> None:
        self.url, self.concurrency = url, concurrency
        self.order_auth = {"Authorization": f"Bearer {token}"}
        self.privacy_auth = {"Authorization": f"Bearer {privacy}"}
        self.after: int | None = None  # the last disclosure seq read, across rounds

    async def _new_entries(self, client: aiohttp.ClientSession) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if self.after is not None:
                params["after"] = self.after
            async with client.get(f"{self.url}/v1/disclosures", params=params, headers=self.privacy_auth) as r:
                r.raise_for_status()
                page = (await r.json())["items"]
            items += page
            if page:
                self.after = max(int(e["seq"]) for e in page)
            if len(page) < 1000:
                return items

    async def round(self, tag: str, n: int, first_person: int, per_person: int,
                    concurrency: int | None = None) -> dict[str, Any]:
        """The orders are encoded before the clock starts and sent by ``concurrency`` lanes over one aiohttp
        session (as ``bench/accept.py`` sends them): this driver shares the machine's cores with the gateway,
        and what it spends per order is not the gateway's cost (the raw baseline gets its orders the same
        way, prepared, from a pipe)."""
        lanes = concurrency or self.concurrency
        accept_lat: list[float] = []
        accepted_at: dict[str, float] = {}
        bodies = [json.dumps(order(f"gw-{tag}-{i}.se", first_person + i // per_person, f"GW-{tag}-{i}")).encode()
                  for i in range(n)]
        headers = [{**self.order_auth, "Content-Type": "application/json", "Idempotency-Key": f"bench-{tag}-{i:08d}"}
                   for i in range(n)]
        connector = aiohttp.TCPConnector(limit=lanes + 1)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:
            queue = iter(range(n))

            async def lane() -> None:
                for i in queue:
                    t = time.perf_counter()
                    async with client.post(f"{self.url}/v1/registrations", data=bodies[i], headers=headers[i]) as r:
                        answer = await r.read()
                        status = r.status
                    accept_lat.append(time.perf_counter() - t)
                    assert status == 202, status
                    accepted_at[json.loads(answer)["id"]] = time.time()

            t0_wall, t0 = time.time(), time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(lane() for _ in range(lanes))), timeout=ROUND_TIMEOUT_S)
            accept_wall = time.perf_counter() - t0
            done: dict[str, float] = {}
            not_delivered: dict[str, int] = {}
            commands: dict[str, int] = {}
            deadline = time.monotonic() + ROUND_TIMEOUT_S
            while time.monotonic() < deadline:
                for e in await self._new_entries(client):
                    if e["registration_id"] not in accepted_at:
                        continue
                    if e["outcome"] != "delivered":
                        key = f"{e['command']} {e['outcome']} {e['result_code']}"
                        not_delivered[key] = not_delivered.get(key, 0) + 1
                        continue
                    commands[e["command"]] = commands.get(e["command"], 0) + 1
                    if e["command"] == "domain:create":
                        done[e["registration_id"]] = _iso_ts(e["recorded_at"])
                if len(done) >= n:
                    break
                async with client.get(f"{self.url}/healthz") as r:
                    health = await r.json()
                if health["outbox_pending"] == 0 and time.monotonic() > deadline - ROUND_TIMEOUT_S + 10:
                    break  # nothing left to deliver for 10 s: whatever is missing failed (counted above)
                await asyncio.sleep(0.2)
        e2e = [max(0.0, t - accepted_at[rid]) for rid, t in done.items()]
        wall = max(done.values(), default=t0_wall) - t0_wall
        return {
            "accepted_per_s": n / accept_wall,
            "accept_p50_ms": pct(accept_lat, 50) * 1e3,
            "accept_p99_ms": pct(accept_lat, 99) * 1e3,
            "delivered": len(done),
            "delivered_per_s": len(done) / wall if wall > 0 else float("nan"),
            "p50_ms": pct(e2e, 50) * 1e3,
            "p99_ms": pct(e2e, 99) * 1e3,
            "failed": not_delivered,
            "commands": commands,
        }


def raw_ask(proc: subprocess.Popen[str], ask: dict[str, Any]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(ask) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()  # the baseline bounds its own round (300 s); EOF if it died
    if not line:
        raise SystemExit("the raw EPP baseline stopped (see its log)")
    result: dict[str, Any] = json.loads(line)
    return result


def raw_round(proc: subprocess.Popen[str], tag: str, n: int, first_person: int, per_person: int,
              concurrency: int | None = None) -> dict[str, Any]:
    return raw_ask(proc, {"tag": tag, "n": n, "first_person": first_person, "per_person": per_person,
                          "concurrency": concurrency})


def wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("the gateway exited at start (see its log)")
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not answer /healthz in 30 s")


# (label, key in the gateway's results, key in the baseline's, ratio printed)
FIGURES: tuple[tuple[str, str, str | None], ...] = (
    ("delivered/s", "delivered_per_s", "delivered_per_s"),
    ("latency p50 ms (gw 202->logged; raw order->answered)", "p50_ms", "p50_ms"),
    ("latency p99 ms (gw 202->logged; raw order->answered)", "p99_ms", "p99_ms"),
    ("accepted/s (gateway only)", "accepted_per_s", None),
    ("accept latency p50 ms (gateway only)", "accept_p50_ms", None),
    ("accept latency p99 ms (gateway only)", "accept_p99_ms", None),
    ("delivered (of n)", "delivered", "delivered"),
)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def report(gw: list[dict[str, Any]], raw: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, gkey, rkey in FIGURES:
        g = summary([float(r[gkey]) for r in gw])
        line: dict[str, Any] = {"gateway": g}
        if rkey is not None:
            b = summary([float(r[rkey]) for r in raw])
            line["baseline"] = b
            line["ratio"] = g["median"] / b["median"] if b["median"] else float("nan")
        out[label] = line
    return out


def print_report(args: argparse.Namespace, figures: dict[str, Any], gw: list[dict[str, Any]],
                 raw: list[dict[str, Any]]) -> None:
    def fmt(s: dict[str, float]) -> str:
        return f"{s['median']:9.1f} ({s['min']:.1f}..{s['max']:.1f})"

    print(f"e2e: n={args.n} a round, {args.rounds} rounds interleaved (baseline, gateway, ...), "
          f"concurrency {args.concurrency}, {args.per_person} orders a person, EPP sessions {args.max_sessions}; "
          "median (min..max)")
    for label, line in figures.items():
        text = f"  {label:<52} gateway {fmt(line['gateway'])}"
        if "baseline" in line:
            text += f"   baseline {fmt(line['baseline'])}   ratio gateway/baseline {line['ratio']:.2f}"
        print(text)
    failures = [("gateway", r["failed"]) for r in gw if r["failed"]] + [("baseline", r["failed"]) for r in raw
                                                                        if r["failed"]]
    for side, failed in failures:
        print(f"  not delivered ({side}): {failed}")
    print(f"  commands a round (last round): gateway (delivered, as logged) {gw[-1]['commands']}; "
          f"baseline (answered) {raw[-1]['commands']}")


def latency_report(gw: list[dict[str, Any]], raw: list[dict[str, Any]]) -> dict[str, Any]:
    g = summary([float(r["p50_ms"]) for r in gw])
    order_ = summary([float(r["p50_ms"]) for r in raw])
    rtt = summary([float(r["rtt_p50_ms"]) for r in raw])
    accept = summary([float(r["accept_p50_ms"]) for r in gw])
    return {"gateway_accepted_to_delivered_p50_ms": g, "raw_order_p50_ms": order_, "raw_round_trip_p50_ms": rtt,
            "gateway_accept_p50_ms": accept,
            "over_round_trip_ms": g["median"] - rtt["median"], "over_raw_order_ms": g["median"] - order_["median"]}


def print_latency(args: argparse.Namespace, lat: dict[str, Any]) -> None:
    def fmt(s: dict[str, float]) -> str:
        return f"{s['median']:7.2f} ({s['min']:.2f}..{s['max']:.2f})"

    print(f"latency at concurrency 1: {args.latency_n} orders a round, one order a person, {args.rounds} rounds "
          "interleaved; median (min..max)")
    gw = lat["gateway_accepted_to_delivered_p50_ms"]
    print(f"  accepted -> delivered p50 ms (202 -> domain:create logged)  gateway {fmt(gw)}"
          f"   baseline: one pooled EPP round trip {fmt(lat['raw_round_trip_p50_ms'])}"
          f"   over it {lat['over_round_trip_ms']:.2f} ms (goal <= 2)")
    print(f"  the same order by the raw client p50 ms (contact + domain)  {fmt(lat['raw_order_p50_ms'])}"
          f"   gateway over it {lat['over_raw_order_ms']:.2f} ms")
    print(f"  gateway accept p50 ms at c=1                                 {fmt(lat['gateway_accept_p50_ms'])}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150, help="registrations a round and side (≤ 5000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds a side (≥ 3 for a median; ≤ 15)")
    ap.add_argument("--concurrency", type=int, default=16, help="orders in flight, both sides")
    ap.add_argument("--per-person", type=int, default=3, help="consecutive orders of one person (one contact)")
    ap.add_argument("--max-sessions", type=int, default=Settings().epp_max_sessions,
                    help="EPP sessions, both sides (default: the gateway's epp_max_sessions)")
    ap.add_argument("--persistent-sandbox", action="store_true",
                    help="the sandbox writes its objects to disk after each change (slower registry)")
    ap.add_argument("--latency-n", type=int, default=30,
                    help="orders a round at concurrency 1 (latency rounds, interleaved like the others)")
    ap.add_argument("--delivery", choices=("external", "inprocess"), default="external",
                    help="external: the API plus a 'gateway worker' process, as 'gateway run' starts them; "
                         "inprocess: the API delivers itself")
    ap.add_argument("--json", action="store_true", help="also print every round's figures as JSON")
    args = ap.parse_args()
    args.latency_n = max(3, min(args.latency_n, 500))
    args.n, args.rounds = max(1, min(args.n, 5000)), max(1, min(args.rounds, 15))
    args.per_person = max(1, args.per_person)
    warm = min(args.n, 2 * args.max_sessions)
    people_a_round = -(-args.n // args.per_person)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pki = ensure_dev_pki(tmp / "pki")
        sandbox_argv = [sys.executable, "-m", "adapters.epp.sandbox", "--host", "127.0.0.1", "--port", "0",
                        "--pki-dir", str(pki.directory), "--client-id", CLIENT_ID, "--password", PASSWORD,
                        "--no-validate"]
        if args.persistent_sandbox:
            sandbox_argv += ["--state-dir", str(tmp / "sandbox")]
        with child(sandbox_argv, stdout=subprocess.PIPE, log=tmp / "sandbox.log") as sb:
            port = sandbox_port(sb)
            token, privacy = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            tokens = tmp / "tokens.yaml"
            tokens.write_text(yaml.safe_dump({"tokens": [
                {"name": "bench", "role": "ordering", "sha256": hash_token(token)},
                {"name": "staff", "role": "privacy", "sha256": hash_token(privacy)}]}))
            gw_port = free_port()
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
                   "GATEWAY_PORT": str(gw_port), "GATEWAY_VAR_DIR": str(tmp / "var"),
                   "GATEWAY_PKI_DIR": str(pki.directory), "GATEWAY_SANDBOX_PORT": str(port),
                   "GATEWAY_REGISTRAR_CLIENT_ID": CLIENT_ID, "GATEWAY_REGISTRAR_PASSWORD": PASSWORD,
                   "GATEWAY_TOKENS_FILE": str(tokens), "GATEWAY_WORKER_POLL_S": "0.02",
                   "GATEWAY_WORKER_BATCH": "32", "GATEWAY_WORKER_CONCURRENCY": str(args.concurrency),
                   "GATEWAY_EPP_MAX_SESSIONS": str(args.max_sessions), "GATEWAY_DELIVERY": args.delivery}
            raw_argv = [sys.executable, str(ROOT / "bench" / "raw_epp.py"), "--port", str(port), "--pki-dir",
                        str(pki.directory), "--max-sessions", str(args.max_sessions),
                        "--concurrency", str(args.concurrency)]
            worker_argv = ([sys.executable, "-m", "gateway", "worker"] if args.delivery == "external"
                           else [sys.executable, "-c", "import time; time.sleep(3600)"])
            with (child([sys.executable, "-m", "gateway", "serve"], env=env, log=tmp / "gateway.log") as gwp,
                  child(worker_argv, env=env, log=tmp / "worker.log"),
                  child(raw_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, log=tmp / "raw.log") as rawp):
                url = f"http://127.0.0.1:{gw_port}"
                wait_healthy(url, gwp)
                gateway = Gateway(url, token, privacy, args.concurrency)
                person = 0
                raw_round(rawp, "warm", warm, person, args.per_person)
                asyncio.run(gateway.round("warm", warm, person + 1_000_000, args.per_person))
                raw: list[dict[str, Any]] = []
                gw: list[dict[str, Any]] = []
                for k in range(1, args.rounds + 1):
                    person += people_a_round + 1
                    raw.append(raw_round(rawp, f"r{k}", args.n, person, args.per_person))
                    gw.append(asyncio.run(gateway.round(f"r{k}", args.n, person + 1_000_000, args.per_person)))
                # latency at concurrency 1: one order at a time on both sides, and one pooled EPP round trip
                lat_raw: list[dict[str, Any]] = []
                lat_gw: list[dict[str, Any]] = []
                for k in range(1, args.rounds + 1):
                    person += args.latency_n + 1
                    lat_raw.append(raw_round(rawp, f"l{k}", args.latency_n, person, 1, concurrency=1)
                                   | raw_ask(rawp, {"round_trips": args.latency_n}))
                    lat_gw.append(asyncio.run(gateway.round(f"l{k}", args.latency_n, person + 1_000_000, 1,
                                                            concurrency=1)))
    figures = report(gw, raw)
    print_report(args, figures, gw, raw)
    latency = latency_report(lat_gw, lat_raw)
    print_latency(args, latency)
    figures["latency_c1"] = latency
    if args.json:
        print(json.dumps({"figures": figures, "rounds": {"gateway": gw, "baseline": raw}}, indent=2))


if __name__ == "__main__":
    main()
