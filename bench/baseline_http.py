"""The accept baseline: what a registrar could do without the gateway, an aiohttp handler that takes the
same order body and makes it durable with one SQLite insert (WAL, ``synchronous=FULL``, one transaction a
request), answering 202 only after the commit.  ``/nodb`` answers the same 202 without touching a database:
the floor for the gateway's per-request overhead.  Run as its own process by ``bench/accept.py``.

    .venv/bin/python bench/baseline_http.py --port P --db FILE
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import uuid

from aiohttp import web


def make_app(db: str) -> web.Application:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, key TEXT UNIQUE, body BLOB)")

    async def durable(request: web.Request) -> web.Response:
        body = await request.read()
        json.loads(body)  # the same parse the gateway does before anything else
        rid = uuid.uuid4().hex
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO orders(id, key, body) VALUES (?,?,?)",
                     (rid, request.headers.get("Idempotency-Key", rid), body))
        conn.execute("COMMIT")
        return web.json_response({"id": rid, "status": "accepted"}, status=202)

    async def nodb(request: web.Request) -> web.Response:
        body = await request.read()
        json.loads(body)
        return web.json_response({"id": uuid.uuid4().hex, "status": "accepted"}, status=202)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/durable", durable)
    app.router.add_post("/nodb", nodb)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True)
    args = ap.parse_args()
    web.run_app(make_app(args.db), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
