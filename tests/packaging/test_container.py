"""No container runtime in CI: the Dockerfile and compose.yaml are checked statically.  The build context
(after .dockerignore) holds everything the Dockerfile copies; the image is multi-stage, non-root, has the
fonts the PDF extracts need and a health check on the configured port; compose.yaml builds that Dockerfile
and its services, volumes and settings agree with each other and with the gateway's settings."""

from __future__ import annotations

import fnmatch
import re

import yaml

from gateway.settings import Settings
from tests.conftest import ROOT


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        op, _, rest = logical.partition(" ")
        out.append((op.upper(), rest.strip()))
        logical = ""
    return out


def _ignored(rel: str, patterns: list[str]) -> bool:
    """.dockerignore semantics: the last matching pattern wins; ``!`` re-includes; a match on a parent
    directory counts for everything below it."""
    parts = rel.split("/")
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.strip("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pat.startswith("**/"):
            candidates += ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
            pat = pat[3:]
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            ignored = not neg
    return ignored


def _context_files() -> tuple[list[str], list[str]]:
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    return patterns, [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                      if ".venv" not in p.parts and ".git" not in p.parts]


def _copies() -> list[list[str]]:
    """The sources of every COPY/ADD from the build context (not ``--from`` another stage)."""
    out = []
    for op, args in _instructions((ROOT / "Dockerfile").read_text()):
        if op in ("COPY", "ADD"):
            words = args.split()
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            out.append(words[:-1])
    return out


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    patterns, files = _context_files()
    sources = [s for srcs in _copies() for s in srcs]
    assert sources, "the Dockerfile copies nothing from the context?"
    for src in sources:
        path = ROOT / src
        assert path.exists(), f"COPY {src}: not in the repository"
        assert not _ignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
        if path.is_dir():
            inside = [f for f in files if f.startswith(src.rstrip("/") + "/") and (ROOT / f).is_file()
                      and not _ignored(f, patterns)]
            assert inside, f"COPY {src}: nothing of it reaches the build context"
    # what the wheel needs at build time: the package data, including the policy files behind the
    # gateway/_config link (which must resolve inside the copied tree)
    link = ROOT / "gateway" / "_config"
    assert link.resolve() == (ROOT / "config").resolve()
    assert "config" in sources and "gateway" in sources and "pyproject.toml" in sources
    for needed in ["config/jurisdictions.yaml", "config/recipients/se.yaml",
                   "gateway/http/pages/templates/base.html", "gateway/rights/templates/extract.html.j2"]:
        assert not _ignored(needed, patterns), needed
    # and nothing that does not belong in an image
    for unwanted in [".venv/bin/python", "var/keys/kek.json", "var/tokens.yaml", "tests/conftest.py",
                     "gateway/__pycache__/settings.cpython-311.pyc"]:
        assert _ignored(unwanted, patterns), unwanted


def test_the_dockerignore_check_can_fail() -> None:
    assert _ignored("var/x", ["*", "!gateway"])
    assert not _ignored("gateway/a.py", ["*", "!gateway"])
    assert _ignored("gateway/__pycache__/a.pyc", ["*", "!gateway", "**/__pycache__"])


def test_the_image_is_multi_stage_non_root_with_fonts_and_a_health_check_on_the_port() -> None:
    ins = _instructions((ROOT / "Dockerfile").read_text())
    froms = [a for op, a in ins if op == "FROM"]
    assert len(froms) >= 2 and " AS " in froms[0].upper()
    final = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM"):]
    runs = " ".join(a for op, a in final if op == "RUN")
    assert "fonts-dejavu-core" in runs
    users = [a for op, a in final if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(op == "COPY" and "--from=" in a for op, a in final)  # the wheel from the build stage
    health = [a for op, a in final if op == "HEALTHCHECK"]
    assert len(health) == 1 and "GATEWAY_PORT" in health[0] and "/healthz" in health[0]
    env = " ".join(a for op, a in final if op == "ENV")
    assert "GATEWAY_HOST=0.0.0.0" in env and "GATEWAY_VAR_DIR=/data" in env
    assert re.search(r"GATEWAY_PORT=(\d+)", env)
    port = re.search(r"GATEWAY_PORT=(\d+)", env)
    assert port is not None and ("EXPOSE", port.group(1)) in final
    assert "GATEWAY_CONFIG_DIR" not in env  # the policy files come with the wheel
    assert [a for op, a in final if op == "CMD"] == ['["gateway", "serve"]']


def test_compose_builds_the_dockerfile_and_its_services_agree() -> None:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = doc["services"]
    assert {"gateway", "worker", "db"} <= set(services)
    fields = set(Settings.model_fields)
    for name, svc in services.items():
        build = svc.get("build")
        if build is not None:
            assert (ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).is_file()
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on undefined service {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in (doc.get("volumes") or {}), f"{name}: undeclared volume {source}"
        for key in (svc.get("environment") or {}):
            if key.startswith("GATEWAY_"):
                assert key.removeprefix("GATEWAY_").lower() in fields, f"{name}: {key} is not a setting"
    gw, worker, db = services["gateway"], services["worker"], services["db"]
    assert gw["image"] == worker["image"]
    assert "postgres" in db["image"]
    url = gw["environment"]["GATEWAY_DATABASE_URL"]
    assert url.startswith("postgresql://") and "@db:" in url and url == worker["environment"]["GATEWAY_DATABASE_URL"]
    assert gw["environment"]["GATEWAY_DELIVERY"] == "external"
    assert worker["command"] == ["gateway", "worker"]
    assert worker["environment"]["GATEWAY_WORKER_HTTP_PORT"] == "8080"  # the image's HEALTHCHECK port
    assert gw["ports"] and gw["ports"][0].endswith(":8080")
    assert "ports" not in worker and "ports" not in db
    for svc in (gw, worker):  # one set of keys and tokens for every instance, created once by `gateway init`
        assert "gateway-data:/data" in svc["volumes"]
        assert svc["depends_on"]["db"]["condition"] == "service_healthy"
        assert svc["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "gateway init /data" in " ".join(services["init"]["command"])
    assert "healthcheck" in db
