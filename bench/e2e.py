"""End-to-end benchmark: registrations accepted/s and delivered/s through a real gateway process to
the TLS EPP sandbox, with accept and end-to-end latency p50/p99.

Baseline, measured in the same run against the same sandbox: the raw EPP client registering the
same kind of contact + domain directly (no HTTP, no validation, no store).  Figures are reported as
absolute numbers and as the ratio gateway/baseline.  Loopback only; bounded in count and time.

    .venv/bin/python bench/e2e.py [--n 300] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.epp.client import register  # noqa: E402
from adapters.epp.sandbox.server import SandboxThread  # noqa: E402
from adapters.epp.tls import ensure_dev_pki  # noqa: E402
from adapters.epp.types import Endpoint  # noqa: E402
from gateway.auth import hash_token  # noqa: E402
from gateway.models import RegistrationRequest  # noqa: E402
from gateway.outbox.epp import RegistrarContact, build_commands  # noqa: E402
from gateway.policy.loader import load_policies  # noqa: E402
from gateway.policy.minimise import minimise  # noqa: E402

BODY: dict[str, Any] = {
    "order_ref": "BENCH",
    "domain": "bench.se",
    "period_years": 1,
    "nameservers": ["ns1.example.net"],
    "registrant": {
        "kind": "person",
        "name": "Bench Person",
        "national_id": {"scheme": "se_personnummer", "value": "19811218-9876"},
        "address": {"street": ["Storgatan 1"], "city": "Stockholm", "postal_code": "111 22", "country": "SE"},
        "email": "bench@example.se",
        "phone": "+46 8 123 456 78",
    },
}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def baseline(endpoint: Endpoint, n: int, concurrency: int) -> dict[str, float]:
    policies = load_policies(ROOT / "config")
    policy = policies.by_tld["se"]
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []

    async def one(i: int) -> None:
        b = copy.deepcopy(BODY)
        b["domain"] = f"base-{i}.se"
        req = RegistrationRequest.model_validate_json(json.dumps(b))
        cmds = build_commands(req, f"base{i:028d}", minimise(req.registrant, policy), policy,
                              RegistrarContact(), b"k" * 32)
        async with sem:
            t = time.perf_counter()
            await register(endpoint, cmds, f"base-{i}")
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout=300)
    wall = time.perf_counter() - t0
    return {"per_s": n / wall, "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3}


async def through_gateway(url: str, token: str, privacy: str, n: int, concurrency: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    accept_lat: list[float] = []
    accepted_at: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(i: int) -> None:
            b = copy.deepcopy(BODY)
            b["domain"] = f"gw-{i}.se"
            b["order_ref"] = f"BENCH-{i}"
            async with sem:
                t = time.perf_counter()
                r = await client.post("/v1/registrations", json=b, headers={
                    "Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{i:08d}"})
                accept_lat.append(time.perf_counter() - t)
            assert r.status_code == 202, r.text
            accepted_at[r.json()["id"]] = time.time()

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout=300)
        accept_wall = time.perf_counter() - t0
        # wait for every delivery (bounded)
        deadline = time.monotonic() + 300.0
        entries: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            entries, after = [], None
            while True:
                params: dict[str, Any] = {"outcome": "delivered", "limit": 1000}
                if after is not None:
                    params["after"] = after
                r = await client.get("/v1/disclosures", params=params,
                                     headers={"Authorization": f"Bearer {privacy}"})
                page = r.json()
                entries += page["items"]
                if page["next_after"] is None:
                    break
                after = page["next_after"]
            if len(entries) >= n:
                break
            health = (await client.get("/healthz")).json()
            if health["outbox_pending"] == 0 and time.monotonic() > deadline - 290:
                break  # nothing left to deliver: whatever is missing failed (reported below)
            await asyncio.sleep(0.2)
        delivered_wall = time.perf_counter() - t0
        r = await client.get("/v1/disclosures", params={"outcome": "failed", "limit": 1000},
                             headers={"Authorization": f"Bearer {privacy}"})
        failed = r.json()["items"]
    e2e = []
    for e in entries:
        # accepted (202 received) → delivered entry recorded, on the same machine's clock
        t_done = dt.datetime.fromisoformat(e["recorded_at"].replace("Z", "+00:00")).timestamp()
        e2e.append(max(0.0, t_done - accepted_at[e["registration_id"]]))
    return {
        "accepted_per_s": n / accept_wall,
        "accept_p50_ms": pct(accept_lat, 50) * 1e3,
        "accept_p99_ms": pct(accept_lat, 99) * 1e3,
        "delivered": float(len(entries)),
        "failed_attempts": float(len(failed)),
        "failed_codes": sorted({f"{f['result_code']}: {f['reason']}" for f in failed}),
        "delivered_per_s": len(entries) / delivered_wall,
        "accept_to_delivered_p50_ms": pct(e2e, 50) * 1e3,
        "accept_to_delivered_p99_ms": pct(e2e, 99) * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    n = max(1, min(args.n, 5000))
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        pki = ensure_dev_pki(tmp / "pki")
        sb = SandboxThread(pki=pki, client_id="registrar1", password="sandbox-pass-1", validate_schemas=False)
        sb.start()
        endpoint = Endpoint("127.0.0.1", sb.port, "registrar1", "sandbox-pass-1", str(pki.ca_cert),
                            str(pki.client_cert), str(pki.client_key), "localhost", 30.0)
        base = asyncio.run(baseline(endpoint, n, args.concurrency))

        token, privacy = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        tokens = tmp / "tokens.yaml"
        tokens.write_text(yaml.safe_dump({"tokens": [
            {"name": "bench", "role": "ordering", "sha256": hash_token(token)},
            {"name": "staff", "role": "privacy", "sha256": hash_token(privacy)}]}))
        port = free_port()
        env = {**os.environ, "GATEWAY_PORT": str(port), "GATEWAY_VAR_DIR": str(tmp / "var"),
               "GATEWAY_PKI_DIR": str(pki.directory), "GATEWAY_SANDBOX_PORT": str(sb.port),
               "GATEWAY_TOKENS_FILE": str(tokens), "GATEWAY_WORKER_POLL_S": "0.02",
               "GATEWAY_WORKER_BATCH": "32", "GATEWAY_WORKER_CONCURRENCY": str(args.concurrency)}
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            gw = asyncio.run(through_gateway(url, token, privacy, n, args.concurrency))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            sb.stop()
    result = {"n": n, "concurrency": args.concurrency, "baseline_raw_epp": base, "gateway": gw,
              "ratio_delivered_vs_raw_epp": gw["delivered_per_s"] / base["per_s"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
