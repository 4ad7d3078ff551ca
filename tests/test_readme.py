"""The README's "Try it" works verbatim: each ``curl`` in it is replayed against a real gateway (the TLS
EPP sandbox behind it), with the same method, path, headers and body, and answers what the README's
comment under it says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.conftest import Gateway

README = Path(__file__).resolve().parents[1] / "README.md"


def try_it_commands() -> list[tuple[list[str], str]]:
    """(curl argv, the ``# →`` comment that follows it) for every curl in the "Try it" section."""
    section = README.read_text().split("## Try it", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for command, comment in re.findall(r"(curl .*?)\n# → ([^\n]*)", block, re.S):
            out.append((shlex.split(command.replace("\\\n", " ")), comment))
    return out


def test_the_readme_has_the_examples_it_promises() -> None:
    commands = try_it_commands()
    assert len(commands) == 3
    assert [c.startswith(("202", "the delivered", "422 transfer_blocked")) for _, c in commands] == [True] * 3


async def test_try_it_works_verbatim(gateway: Gateway) -> None:
    seen_keys = set()
    for argv, comment in try_it_commands():
        headers: dict[str, str] = {}
        method, body, url = "GET", None, ""
        it = iter(argv[1:])
        for arg in it:
            if arg == "-X":
                method = next(it)
            elif arg == "-H":
                name, _, value = next(it).partition(": ")
                headers[name] = value
            elif arg == "-d":
                body = next(it)
            elif arg.startswith("http"):
                url = arg
        role = "privacy" if "dev-tokens/privacy" in headers.get("Authorization", "") else "ordering"
        headers["Authorization"] = gateway.tokens.h(role)["Authorization"]
        seen_keys.add(headers.get("Idempotency-Key"))
        path = url.removeprefix("http://127.0.0.1:8080")
        r = await gateway.client.request(method, path, headers=headers, data=body)
        answer = await r.json()
        if comment.startswith("202"):
            assert r.status == 202, answer
            assert answer["transfers"][0]["transfer"]["category"] == "eea"
            await gateway.wait_status(answer["id"], {"delivered"})
        elif comment.startswith("422 transfer_blocked"):
            assert r.status == 422 and answer["code"] == "transfer_blocked", answer
        else:
            assert r.status == 200 and any(e["outcome"] == "delivered" and e["sv_trid"] for e in answer["items"])
    assert len(seen_keys - {None}) == 2  # two orders, two keys
