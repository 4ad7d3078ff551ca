"""Accept throughput and per-request overhead: the gateway's ``POST /v1/registrations`` against an aiohttp
handler that makes the same body durable with one SQLite insert (``bench/baseline_http.py``), each in its
own process, driven by the same client from this one.

Rows (each the median of ``--rounds`` interleaved rounds, with min..max, the baseline measured in the same
run, and the ratio):

* accept at concurrency 16, delivery on: the gateway delivering to the TLS sandbox while it accepts
  (``gateway serve`` and a ``gateway worker`` process, as ``gateway run`` starts them; ``--delivery
  inprocess`` for the API delivering itself) vs the durable-insert handler;
* accept at concurrency 16, delivery off: a second gateway on its own store with no delivery;
* overhead p50 at concurrency 1, delivery on: the gateway's accept latency minus the p50 of a handler
  that parses the same body and answers without a database (``/nodb``), goal <= 2 ms.

After every run the bench waits until the delivering gateway has sent everything it accepted, so its
worker and the sandbox never take CPU from the next measurement.  Loopback only; bounded in count
(``--n`` <= 20000, ``--rounds`` <= 9) and time (300 s a round).

    .venv/bin/python bench/accept.py [--n 2000] [--n1 300] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.epp.tls import ensure_dev_pki  # noqa: E402
from bench.e2e import child, free_port, sandbox_port, wait_healthy  # noqa: E402
from bench.raw_epp import CLIENT_ID, PASSWORD, order, pct  # noqa: E402
from gateway.auth import hash_token  # noqa: E402

ROUND_TIMEOUT_S = 300.0


async def drive(url: str, headers: dict[str, str], tag: str, n: int, concurrency: int, first_person: int,
                want: int) -> dict[str, float]:
    """``n`` orders, ``concurrency`` in flight; answers must all be ``want``."""
    lat: list[float] = []
    bodies = [json.dumps(order(f"acc-{tag}-{i}.se", first_person + i, f"ACC-{tag}-{i}")).encode()
              for i in range(n)]
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as http:
        queue = iter(range(n))

        async def lane() -> None:
            for i in queue:
                h = {**headers, "Content-Type": "application/json", "Idempotency-Key": f"acc-{tag}-{i:08d}"}
                t = time.perf_counter()
                async with http.post(url, data=bodies[i], headers=h) as r:
                    await r.read()
                    status = r.status
                lat.append(time.perf_counter() - t)
                if status != want:
                    raise SystemExit(f"{url}: answered {status}, expected {want}")

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(lane() for _ in range(concurrency))), timeout=ROUND_TIMEOUT_S)
        wall = time.perf_counter() - t0
    return {"per_s": n / wall, "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="orders a round at --concurrency (<= 20000)")
    ap.add_argument("--n1", type=int, default=300, help="orders a round at concurrency 1 (<= 5000)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3 for a median; <= 9)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--delivery", choices=("external", "inprocess"), default="external",
                    help="delivery on: a 'gateway worker' process beside the API (as 'gateway run'), or in the API")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n, n1, rounds = max(10, min(args.n, 20_000)), max(10, min(args.n1, 5000)), max(1, min(args.rounds, 9))
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pki = ensure_dev_pki(tmp / "pki")
        sandbox_argv = [sys.executable, "-m", "adapters.epp.sandbox", "--host", "127.0.0.1", "--port", "0",
                        "--pki-dir", str(pki.directory), "--client-id", CLIENT_ID, "--password", PASSWORD,
                        "--no-validate"]
        token = secrets.token_urlsafe(24)
        tokens = tmp / "tokens.yaml"
        tokens.write_text(yaml.safe_dump({"tokens": [{"name": "bench", "role": "ordering",
                                                       "sha256": hash_token(token)}]}))
        with child(sandbox_argv, stdout=subprocess.PIPE, log=tmp / "sandbox.log") as sb:
            port = sandbox_port(sb)
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}

            def gateway_env(name: str, delivery: bool) -> tuple[dict[str, str], int]:
                gw_port = free_port()
                env = {**base_env, "GATEWAY_PORT": str(gw_port), "GATEWAY_VAR_DIR": str(tmp / name),
                       "GATEWAY_PKI_DIR": str(pki.directory), "GATEWAY_SANDBOX_PORT": str(port),
                       "GATEWAY_REGISTRAR_CLIENT_ID": CLIENT_ID, "GATEWAY_REGISTRAR_PASSWORD": PASSWORD,
                       "GATEWAY_TOKENS_FILE": str(tokens), "GATEWAY_DELIVERY": args.delivery if delivery else "off",
                       "GATEWAY_WORKER_POLL_S": "0.02"}
                return env, gw_port

            on_env, on_port = gateway_env("var-on", True)
            off_env, off_port = gateway_env("var-off", False)
            base_port = free_port()
            base_argv = [sys.executable, str(ROOT / "bench" / "baseline_http.py"), "--port", str(base_port),
                         "--db", str(tmp / "baseline.sqlite3")]
            worker_argv = ([sys.executable, "-m", "gateway", "worker"] if args.delivery == "external"
                           else [sys.executable, "-c", "import time; time.sleep(3600)"])
            with (child([sys.executable, "-m", "gateway", "serve"], env=on_env, log=tmp / "gw-on.log") as on,
                  child(worker_argv, env=on_env, log=tmp / "worker.log"),
                  child([sys.executable, "-m", "gateway", "serve"], env=off_env, log=tmp / "gw-off.log") as off,
                  child(base_argv, log=tmp / "baseline.log") as bp):
                on_url, off_url = f"http://127.0.0.1:{on_port}", f"http://127.0.0.1:{off_port}"
                base_url = f"http://127.0.0.1:{base_port}"
                wait_healthy(on_url, on)
                wait_healthy(off_url, off)
                wait_healthy(base_url, bp)
                auth = {"Authorization": f"Bearer {token}"}
                runs: dict[str, list[dict[str, float]]] = {k: [] for k in
                                                           ("base16", "on16", "off16", "nodb1", "on1")}
                person = 0

                def run(key: str, url: str, headers: dict[str, str], tag: str, count: int, c: int,
                        want: int) -> None:
                    nonlocal person
                    runs[key].append(asyncio.run(drive(url, headers, tag, count, c, person, want)))
                    person += count + 1
                    drained(on_url)

                def drained(url: str) -> None:
                    """Wait (bounded) until the delivering gateway has sent what it accepted, so its worker
                    and the sandbox do not take CPU from the next measurement of another side."""
                    deadline = time.monotonic() + ROUND_TIMEOUT_S
                    while time.monotonic() < deadline:
                        if httpx.get(f"{url}/healthz", timeout=5).json()["outbox_pending"] == 0:
                            return
                        time.sleep(0.2)

                # warm-up, untimed
                run("base16", f"{base_url}/durable", {}, "w", 200, args.concurrency, 202)
                run("on16", f"{on_url}/v1/registrations", auth, "w-on", 200, args.concurrency, 202)
                run("off16", f"{off_url}/v1/registrations", auth, "w-off", 200, args.concurrency, 202)
                for k in runs:
                    runs[k].clear()
                for r in range(1, rounds + 1):
                    run("base16", f"{base_url}/durable", {}, f"b{r}", n, args.concurrency, 202)
                    run("on16", f"{on_url}/v1/registrations", auth, f"on{r}", n, args.concurrency, 202)
                    run("off16", f"{off_url}/v1/registrations", auth, f"off{r}", n, args.concurrency, 202)
                    run("nodb1", f"{base_url}/nodb", {}, f"nd{r}", n1, 1, 202)
                    run("on1", f"{on_url}/v1/registrations", auth, f"on1-{r}", n1, 1, 202)
    base = summary([x["per_s"] for x in runs["base16"]])
    on16 = summary([x["per_s"] for x in runs["on16"]])
    off16 = summary([x["per_s"] for x in runs["off16"]])
    nodb = summary([x["p50_ms"] for x in runs["nodb1"]])
    on1 = summary([x["p50_ms"] for x in runs["on1"]])
    overhead = [g["p50_ms"] - b["p50_ms"] for g, b in zip(runs["on1"], runs["nodb1"], strict=True)]

    def fmt(s: dict[str, float]) -> str:
        return f"{s['median']:8.1f} ({s['min']:.1f}..{s['max']:.1f})"

    print(f"accept: {n} orders a round at concurrency {args.concurrency}, {n1} at concurrency 1, {rounds} rounds "
          "interleaved; median (min..max); baselines in their own process")
    print(f"  accept/s c={args.concurrency}, delivery on    gateway {fmt(on16)}   baseline (durable insert) "
          f"{fmt(base)}   ratio {on16['median'] / base['median']:.2f}   goal >= 1000/s")
    print(f"  accept/s c={args.concurrency}, delivery off   gateway {fmt(off16)}   baseline (durable insert) "
          f"{fmt(base)}   ratio {off16['median'] / base['median']:.2f}")
    print(f"  overhead p50 ms c=1, delivery on  gateway p50 {fmt(on1)}   baseline (no-DB handler) p50 {fmt(nodb)}   "
          f"overhead {statistics.median(overhead):.2f} ms   goal <= 2 ms")
    if args.json:
        print(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
