"""The import structure: no circles, and no arrow that climbs from a lower layer to a higher one.

The graph is read from the source (``ast``), every import counted, including those inside functions
and under ``TYPE_CHECKING``: an import moved into a function to dodge a circle is still a circle.
An edge goes to the module named, not to its parent packages' ``__init__``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "adapters")

#: Bottom to top.  A module may import its own layer and the layers below; within a layer, modules
#: import each other freely as long as no circle forms.  The first matching prefix decides.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("gateway.errors", "gateway.clock", "gateway.models", "gateway.identity", "gateway.logs",
              "gateway.settings", "gateway.auth", "gateway.policy", "gateway.ledger", "gateway.webhooks",
              "gateway.i18n")),
    ("adapters", ("adapters",)),
    ("outbox", ("gateway.outbox",)),
    ("store", ("gateway.store",)),
    ("services", ("gateway.services", "gateway.rights")),
    ("delivery", ("gateway.delivery",)),
    ("http", ("gateway.http",)),
    ("composition", ("gateway.compose", "gateway.cli", "gateway.__main__", "gateway.sandbox", "gateway")),
]
#: Layers at the same height that must not see each other.
PEERS = [("outbox", "store"), ("delivery", "http")]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    files = [p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]
    modules = {module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".")
                    anchor = anchor if is_pkg else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import mod`` names a module when pkg.mod is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:  # ``import a.b.c`` of a name inside a module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def layer_of(module: str) -> str:
    best = ""
    name = "?"
    for layer, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, name = p, layer
    return name


def climbing_arrows(graph: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, (name, _) in enumerate(LAYERS)}
    peers = {frozenset(p) for p in PEERS}
    bad = []
    for mod, targets in sorted(graph.items()):
        lm = layer_of(mod)
        for t in sorted(targets):
            lt = layer_of(t)
            if rank[lt] > rank[lm] or frozenset((lm, lt)) in peers:
                bad.append(f"{mod} ({lm}) -> {t} ({lt})")
    return bad


def test_every_module_has_a_layer() -> None:
    assert [m for m in import_graph() if layer_of(m) == "?"] == []


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_no_arrow_climbs_to_a_higher_layer() -> None:
    assert climbing_arrows(import_graph()) == []


def test_the_offline_extract_verifier_does_not_load_the_network_adapters() -> None:
    """``gateway extract verify`` runs on a data subject's or auditor's machine: public key only."""
    code = ("import sys; import gateway.cli.rights; "
            "print(sorted(m for m in sys.modules if m.startswith(('adapters', 'httpx', 'aiohttp', 'asyncpg', "
            "'gateway.store', 'gateway.services', 'gateway.http', 'gateway.delivery', 'gateway.rights.service'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# -- the checks themselves must be able to fail ------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_a_circle_is_found_even_through_a_function_level_import(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "gateway/__init__.py": "",
        "gateway/a.py": "from gateway.b import x\n",
        "gateway/b.py": "def f():\n    from gateway import a\n",
        "gateway/c.py": "import gateway.a\n",
    })
    assert cycles(import_graph(root, ("gateway",))) == [["gateway.a", "gateway.b"]]


def test_a_relative_import_is_resolved(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "gateway/__init__.py": "",
        "gateway/p/__init__.py": "from .q import y\n",
        "gateway/p/q.py": "from ..errors import E\n",
        "gateway/errors.py": "",
    })
    g = import_graph(root, ("gateway",))
    assert g["gateway.p"] == {"gateway.p.q"} and g["gateway.p.q"] == {"gateway.errors"}


@pytest.mark.parametrize(("mod", "target", "climbs"), [
    ("gateway.policy.minimise", "gateway.store.base", True),
    ("gateway.store.base", "gateway.outbox.epp", True),  # peers
    ("gateway.services.changes", "gateway.outbox.epp", False),
    ("adapters.epp.client", "gateway.services.ledger", True),
    ("gateway.http.app", "gateway.delivery.worker", True),  # peers
    ("gateway.compose", "gateway.http.app", False),
])
def test_a_climbing_arrow_is_reported(mod: str, target: str, climbs: bool) -> None:
    assert bool(climbing_arrows({mod: {target}, target: set()})) is climbs
