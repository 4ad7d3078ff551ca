"""The raw-EPP baseline of ``bench/e2e.py``, run as a process of its own: a registrar without the gateway.

Why a separate process: the baseline used to run inside the sandbox's interpreter and log in once per
registration, so it paid for the registry's CPU and for a TLS handshake per order while the gateway did
neither; the gateway looked faster than the raw client.  Here the baseline holds what a registrar would
hold: one ``EppSessionPool`` of logged-in sessions (``max_sessions`` as the gateway's default
``epp_max_sessions``), kept open across rounds, and it does what a sensible registrar does for the same
orders: one contact per person, created by that person's first order and reused by the later ones
(which wait for it), the registrar's own contacts created once.  Nothing else: no HTTP, no validation
beyond building the commands, no store, no disclosure log.

Protocol (one JSON object a line, so ``e2e.py`` can interleave rounds with the gateway's):
stdin ``{"tag": "r1", "n": 150, "first_person": 0, "per_person": 3}`` → stdout ``{"wall_s": ..., ...}``;
the process exits at end of input.  Order ``i`` of a round belongs to person ``first_person +
i // per_person``; the national ids are made by ``person_id`` (shared with ``e2e.py``).

    .venv/bin/python bench/raw_epp.py --port PORT --pki-dir DIR [--max-sessions 4] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stdnum import luhn  # noqa: E402

from adapters.epp.client import register_with  # noqa: E402
from adapters.epp.pool import EppSessionPool  # noqa: E402
from adapters.epp.tls import ensure_dev_pki  # noqa: E402
from adapters.epp.types import DomainCheck, Endpoint  # noqa: E402
from gateway.errors import DeliveryError  # noqa: E402
from gateway.models import RegistrationRequest  # noqa: E402
from gateway.outbox.epp import RegistrarContact, build_commands  # noqa: E402
from gateway.policy.loader import load_policies  # noqa: E402
from gateway.policy.minimise import minimise  # noqa: E402
from gateway.settings import Settings  # noqa: E402

CLIENT_ID = "registrar1"
PASSWORD = "sandbox-pass-1"  # the local sandbox's, not a secret
ROUND_TIMEOUT_S = 300.0

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


def person_id(k: int) -> str:
    """A valid, made-up personnummer for person ``k`` (900 per birth date, dates from 1940 on)."""
    born = dt.date(1940, 1, 1) + dt.timedelta(days=k // 900)
    serial = f"{100 + k % 900:03d}"
    check = luhn.calc_check_digit(born.strftime("%y%m%d") + serial)
    return f"{born:%Y%m%d}-{serial}{check}"


def order(domain: str, person: int, ref: str) -> dict[str, Any]:
    """The order body both sides register: the same kind of contact + domain, person ``person``."""
    body = copy.deepcopy(BODY)
    body["domain"] = domain
    body["order_ref"] = ref
    body["registrant"]["national_id"]["value"] = person_id(person)
    return body


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Registrar:
    """The registrar's side: a session pool, the registrar's contacts (created once), a contact per person."""

    def __init__(self, endpoint: Endpoint, max_sessions: int, concurrency: int) -> None:
        settings = Settings()
        self.pool = EppSessionPool(endpoint, max_sessions=max_sessions, idle_keepalive_s=settings.epp_keepalive_s,
                                   rate_limit_per_s=settings.epp_rate_limit_per_s, trid_prefix="raw",
                                   on_command=self._count)
        self.sent: Counter[str] = Counter()  # commands answered, by name: shows the contacts reused
        self.policy = load_policies(ROOT / "config").by_tld["se"]
        self.concurrency = concurrency
        self.provisioned: dict[str, str] = {}
        self.contacts: dict[int, asyncio.Future[str]] = {}

    def _count(self, command: str, code: int | None, seconds: float) -> None:
        if code is not None:
            self.sent[command] += 1

    async def round_trips(self, n: int) -> dict[str, Any]:
        """``n`` domain:check commands one after another on a pooled, logged-in session: the time of one
        EPP round trip, the floor under any registration's latency."""
        lat: list[float] = []
        for i in range(n):
            t = time.perf_counter()
            async with self.pool.acquire() as client:
                await client.send(DomainCheck(names=(f"rtt-{i}.se",)))
            lat.append(time.perf_counter() - t)
        return {"rtt_p50_ms": pct(lat, 50) * 1e3, "rtt_p99_ms": pct(lat, 99) * 1e3}

    async def round(self, tag: str, n: int, first_person: int, per_person: int,
                    concurrency: int | None = None) -> dict[str, Any]:
        sent_before = Counter(self.sent)
        sem = asyncio.Semaphore(concurrency or self.concurrency)
        lat: list[float] = []
        failed: dict[str, int] = {}

        async def one(i: int) -> None:
            person = first_person + i // per_person
            body = order(f"raw-{tag}-{i}.se", person, f"RAW-{tag}-{i}")
            req = RegistrationRequest.model_validate_json(json.dumps(body))
            cmds = build_commands(req, f"raw{tag}{i:020d}"[-32:], minimise(req.registrant, self.policy),
                                  self.policy, RegistrarContact(), b"k" * 32)
            subject_ids = [c.id for c in cmds.contacts if c.id not in cmds.registrar_contacts]
            mine = self.contacts.get(person)
            first = mine is None
            if first:
                mine = self.contacts[person] = asyncio.get_running_loop().create_future()
            assert mine is not None
            held: dict[str, str] | None = None
            if not first:
                try:
                    known = await mine  # the person's contact, created by their first order
                except DeliveryError:
                    failed["contact-missing"] = failed.get("contact-missing", 0) + 1
                    return
                held = dict.fromkeys(subject_ids, known)
            async with sem:
                t = time.perf_counter()
                try:
                    async with self.pool.acquire() as client:
                        out = await register_with(client, cmds, f"raw-{tag}-{i}", held=held,
                                                  provisioned=self.provisioned)
                except DeliveryError as exc:
                    failed[exc.code] = failed.get(exc.code, 0) + 1
                    if first:
                        mine.set_exception(exc)
                    return
                lat.append(time.perf_counter() - t)
            if first:
                mine.set_result(out.objects["contact:registrant"])

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout=ROUND_TIMEOUT_S)
        wall = time.perf_counter() - t0
        for fut in self.contacts.values():
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: a failed person is counted above, not logged as unawaited
        return {"wall_s": wall, "delivered": len(lat), "delivered_per_s": len(lat) / wall,
                "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3, "failed": failed,
                "commands": dict(self.sent - sent_before)}


async def serve(args: argparse.Namespace) -> None:
    pki = ensure_dev_pki(args.pki_dir)
    endpoint = Endpoint("127.0.0.1", args.port, CLIENT_ID, PASSWORD, str(pki.ca_cert), str(pki.client_cert),
                        str(pki.client_key), "localhost", 30.0)
    registrar = Registrar(endpoint, args.max_sessions, args.concurrency)
    loop = asyncio.get_running_loop()
    async with registrar.pool:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            ask = json.loads(line)
            if "round_trips" in ask:
                print(json.dumps(await registrar.round_trips(int(ask["round_trips"]))), flush=True)
                continue
            result = await registrar.round(str(ask["tag"]), int(ask["n"]), int(ask["first_person"]),
                                           int(ask["per_person"]), ask.get("concurrency"))
            print(json.dumps(result), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pki-dir", type=Path, required=True)
    ap.add_argument("--max-sessions", type=int, default=Settings().epp_max_sessions)
    ap.add_argument("--concurrency", type=int, default=16)
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
