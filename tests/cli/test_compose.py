"""The composition root: what runs beside the app is chosen in ``build``, not by the HTTP layer, and
the rights configuration is read when the gateway is built."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.tls import DevPki
from gateway.compose import build
from gateway.errors import ConfigError
from gateway.http.context import SERVICES
from tests.conftest import ROOT, Tokens, body, gateway_settings

pytestmark = pytest.mark.integration


async def test_timers_run_and_nothing_is_delivered_without_a_worker(tmp_path: Path, pki: DevPki,
                                                                    tokens: Tokens) -> None:
    # no registry behind it: with delivery off, nothing may try to reach one
    settings = gateway_settings(tmp_path, pki, 9, tokens, worker_enabled=False, checkpoint_interval_s=0.05)
    app, store = await build(settings)
    svc = app[SERVICES]
    assert svc.rights.partners is None  # Art. 19 notices are left to staff: this process contacts nobody
    assert svc.wake is svc.rights.wake
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        r = await client.post("/v1/registrations", json=body(), headers=tokens.h("ordering") | {
            "Idempotency-Key": "compose-no-worker-1"})
        assert r.status == 202
        reg_id = (await r.json())["id"]
        for _ in range(100):  # the checkpoint timer, started by build, signs one on its own
            if await store.checkpoints():
                break
            await asyncio.sleep(0.05)
        assert await store.checkpoints()
        reg = await store.registration(reg_id)
        assert reg is not None and reg["status"] == "accepted"
        assert await store.pending_count() > 0
    finally:
        await client.close()


async def test_a_bad_retention_file_stops_the_build(tmp_path: Path, pki: DevPki, tokens: Tokens) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "retention.yaml").write_text("measured_from: attempted_at\npurposes: {}\n")
    settings = gateway_settings(tmp_path, pki, 9, tokens, config_dir=config)
    with pytest.raises(ConfigError, match=r"retention\.yaml"):
        await build(settings)
