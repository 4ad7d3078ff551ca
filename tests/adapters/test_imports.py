"""The adapters' own import rules, on top of ``tests/test_structure.py``'s layering.

Adapters do I/O for the gateway and must not reach back into it beyond the pure core they share
(errors, models, policy, clock); and inside the EPP package arrows only go down, so that the client
can be used (and tested over a transport) without the pool or the pooled retries.
"""

from __future__ import annotations

from tests.test_structure import cycles, import_graph

ALLOWED_GATEWAY = ("gateway.errors", "gateway.models", "gateway.policy", "gateway.clock")
#: The sandbox is a development registry, not a delivery adapter: it reads the gateway's settings so that
#: both, started with their defaults, agree on port, client id and password.
ALLOWED_EXTRA = {("adapters.epp.sandbox.server", "gateway.settings")}


def _adapters() -> dict[str, set[str]]:
    return {m: t for m, t in import_graph().items() if m.startswith("adapters")}


def test_adapters_import_only_the_gateway_core() -> None:
    climbing = sorted(
        f"{mod} -> {target}"
        for mod, targets in _adapters().items()
        for target in targets
        if target.startswith("gateway") and not target.startswith(ALLOWED_GATEWAY)
        and (mod, target) not in ALLOWED_EXTRA
    )
    assert climbing == []


def test_no_circle_in_adapters() -> None:
    assert cycles(_adapters()) == []


def test_the_epp_client_knows_neither_the_pool_nor_the_retries() -> None:
    graph = import_graph()
    above = {"adapters.epp.pool", "adapters.epp.pooled"}
    for module in ("adapters.epp.client", "adapters.epp.commands", "adapters.epp.transport"):
        assert graph[module] & above == set(), module
    assert "adapters.epp.client" in graph["adapters.epp.pool"]
