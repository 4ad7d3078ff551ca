"""The served docs for people: Redoc over ``/openapi.json``, and one page per problem ``code``.

Redoc's standalone bundle is vendored in ``static/`` (redoc 2.5.4 from npm, MIT, with its licence files), so
the page loads nothing from outside the gateway (``static/VENDORED.md``: version, checksums, the one
change).  The problem pages are generated from the error tree
(:mod:`gateway.errors`: every ``GatewayError`` subclass's code, status, title and docstring), so a problem's
``type`` (``/docs/problems/{code}``) always resolves to a page describing that code.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from gateway.errors import PROBLEM_DOCS, GatewayError

__all__ = ["ASSETS", "DOCS_CSP", "PAGE_CSP", "ProblemDoc", "docs_page", "problem_docs", "problem_index",
           "problem_page"]

#: Redoc renders with styled-components (inline ``<style>``), builds its search index in a worker started from
#: a blob URL and inlines its icons as data URLs; everything else stays on this origin.  Only ``/docs`` gets it.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
#: The problem pages: static HTML, no script, no style.
PAGE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

#: The files under ``/docs/static/``: name → media type.
ASSETS: dict[str, str] = {
    "redoc.standalone.js": "text/javascript",
    "redoc.standalone.js.LICENSE.txt": "text/plain",
    "redoc.LICENSE": "text/plain",
    "redocly-logo-mini.svg": "image/svg+xml",
}


@cache
def asset(name: str) -> bytes:
    return files("gateway.http.docs").joinpath("static", name).read_bytes()


@dataclass(frozen=True)
class ProblemDoc:
    code: str
    status: int
    title: str
    description: str
    parent: str | None  # the code of the nearest ancestor with another code

    @property
    def uri(self) -> str:
        return f"{PROBLEM_DOCS}{self.code}"


def _tree(cls: type[GatewayError]) -> Iterator[type[GatewayError]]:
    yield cls
    for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
        yield from _tree(sub)


def _parent(cls: type[GatewayError]) -> str | None:
    for base in cls.__mro__[1:]:
        if isinstance(base, type) and issubclass(base, GatewayError) and base.code != cls.code:
            return base.code
    return None


def problem_docs() -> dict[str, ProblemDoc]:
    """Every code of the error tree (each ``GatewayError`` subclass imported so far), in tree order."""
    out: dict[str, ProblemDoc] = {}
    for cls in _tree(GatewayError):
        if cls.code in out:
            continue
        doc = inspect.getdoc(cls) or ""
        out[cls.code] = ProblemDoc(cls.code, cls.status, cls.title, doc, _parent(cls))
    return out


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)} · Registrant Gateway</title></head>\n<body>\n{body}\n</body></html>\n"
    )


def _section(p: ProblemDoc, *, heading: str = "h2") -> str:
    parent = (f'<p>A kind of <a href="{PROBLEM_DOCS}{p.parent}"><code>{p.parent}</code></a>.</p>'
              if p.parent else "")
    paras = "".join(f"<p>{html.escape(x)}</p>" for x in p.description.split("\n\n") if x.strip())
    return (
        f'<section id="{p.code}" class="problem">\n<{heading}><code>{p.code}</code></{heading}>\n'
        f"<dl><dt>HTTP status</dt><dd>{p.status}</dd><dt>Title</dt><dd>{html.escape(p.title)}</dd>"
        f"<dt>type</dt><dd><code>{p.uri}</code></dd></dl>\n{paras}{parent}\n</section>"
    )


_INTRO = (
    "<p>Every error of the API is an RFC 9457 problem (<code>application/problem+json</code>) with a stable "
    "machine-readable <code>code</code>; its <code>type</code> is the address of the code's page here.  "
    "A problem carries no personal data: <code>errors</code> names field paths and rule names, never values.  "
    'The operations are described in <a href="/docs">the API reference</a> '
    '(<a href="/openapi.json">OpenAPI 3.1</a>).</p>'
)


def problem_index() -> str:
    docs = problem_docs()
    rows = "".join(
        f'<tr><td><a href="{p.uri}"><code>{p.code}</code></a></td><td>{p.status}</td>'
        f"<td>{html.escape(p.title)}</td></tr>" for p in docs.values())
    table = f"<table><thead><tr><th>code</th><th>status</th><th>title</th></tr></thead><tbody>{rows}</tbody></table>"
    sections = "\n".join(_section(p) for p in docs.values())
    return _page("Problem codes", f"<h1>Problem codes</h1>\n{_INTRO}\n{table}\n{sections}")


def problem_page(code: str) -> str | None:
    p = problem_docs().get(code)
    if p is None:
        return None
    back = '<p><a href="/docs/problems">All problem codes</a> · <a href="/docs">API reference</a></p>'
    return _page(f"Problem {code}", f"{_section(p, heading='h1')}\n{back}")


def docs_page() -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>Registrant Gateway API</title><link rel=\"icon\" href=\"data:,\"></head>\n<body>\n"
        '<redoc spec-url="/openapi.json" hide-hostname="true"></redoc>\n'
        '<script src="/docs/static/redoc.standalone.js"></script>\n'
        "</body></html>\n"
    )

