"""What the ledger core and the store may import: the store sits on the core alone (never the outbox, the
services, HTTP or delivery), and the ledger core stays pure (no database, no model, no store)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_structure import ROOT, import_graph, layer_of


def _imports_outside(package: str, allowed: tuple[str, ...]) -> list[str]:
    graph = import_graph()
    return [f"{mod} -> {target}" for mod, targets in sorted(graph.items())
            if mod == package or mod.startswith(package + ".")
            for target in sorted(targets)
            if not any(target == a or target.startswith(a + ".") for a in (package, *allowed))]


def test_the_store_imports_only_the_core() -> None:
    core = tuple(sorted({m for m in import_graph() if layer_of(m) == "core"}))
    assert "gateway.ledger.entry" in core and "gateway.outbox" not in core
    assert _imports_outside("gateway.store", core) == []


def test_the_ledger_core_imports_only_the_error_types() -> None:
    assert _imports_outside("gateway.ledger", ("gateway.errors",)) == []


@pytest.mark.parametrize("module", ["gateway.ledger", "gateway.ledger.entry"])
def test_the_ledger_core_loads_no_database_code(module: str) -> None:
    code = (f"import sys; import {module}; "
            "print(sorted(m for m in sys.modules if m.startswith(('sqlite3', 'asyncpg', 'gateway.store', "
            "'gateway.services', 'gateway.models'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_a_forbidden_import_would_be_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = {"gateway.store.base": {"gateway.outbox.epp", "gateway.errors"}, "gateway.errors": set(),
             "gateway.outbox.epp": set()}
    monkeypatch.setattr(sys.modules[__name__], "import_graph", lambda: graph)
    assert _imports_outside("gateway.store", ("gateway.errors",)) == ["gateway.store.base -> gateway.outbox.epp"]
