"""An Idempotency-Key is bound to the request body's bytes as received (SHA-256 of them): the same bytes
replay the stored answer; other bytes under the same key are a conflict (409), even when they parse to
the same JSON with keys reordered or spaced differently."""

from __future__ import annotations

import json

from tests.conftest import VALID_BODY, Gateway


async def _post(gateway: Gateway, data: bytes, key: str) -> tuple[int, bytes]:
    headers = gateway.tokens.h("ordering") | {"Idempotency-Key": key, "Content-Type": "application/json"}
    r = await gateway.client.post("/v1/registrations", data=data, headers=headers)
    return r.status, await r.read()


async def test_the_same_bytes_replay_and_other_bytes_conflict(gateway: Gateway) -> None:
    sent = json.dumps(VALID_BODY).encode()
    status, first = await _post(gateway, sent, "key-bytes-000001")
    assert status == 202
    assert await _post(gateway, sent, "key-bytes-000001") == (202, first)
    for other in (json.dumps(VALID_BODY, indent=2).encode(),  # the same JSON, spaced
                  json.dumps(dict(reversed(list(VALID_BODY.items())))).encode()):  # the same JSON, reordered
        assert json.loads(other) == VALID_BODY
        status, problem = await _post(gateway, other, "key-bytes-000001")
        assert status == 409 and json.loads(problem)["code"] == "idempotency_conflict"
    # one registration: nothing was accepted twice
    assert (await gateway.wait_status(json.loads(first)["id"], {"delivered", "failed"}))["status"] == "delivered"
    assert len([f for f in gateway.sandbox.sandbox.frames if b"<domain:create" in f]) == 1
