"""Bearer tokens mapped to roles.  Tokens are stored only as SHA-256 hashes.

Tokens are random 256-bit strings issued by us, so a fast hash is the right tool (no dictionary to
attack); comparison is constant-time.  The file is YAML: ``tokens: [{name, role, sha256}]``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import Forbidden, Unauthenticated
from gateway.policy.loader import load_model


class Role(StrEnum):
    ORDERING = "ordering"
    PRIVACY = "privacy"
    AUDITOR = "auditor"


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")]
    role: Literal["ordering", "privacy", "auditor"]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tokens: Annotated[list[TokenEntry], Field(min_length=1)]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        return cls(list(load_model(path, TokenFile).tokens))

    def authenticate(self, header: str | None) -> Principal:
        if not header or not header.startswith("Bearer "):
            raise Unauthenticated()
        digest = hash_token(header[7:].strip())
        found: Principal | None = None
        for e in self._entries:
            if hmac.compare_digest(e.sha256, digest):
                found = Principal(e.name, Role(e.role))
        if found is None:
            raise Unauthenticated()
        return found


def require(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise Forbidden(f"role '{principal.role.value}' may not do this")


def write_dev_tokens(tokens_file: Path, plain_dir: Path) -> dict[str, str]:
    """First run on a developer machine: one token per role, hashes in the tokens file and the
    plain tokens in ``plain_dir/<role>`` (mode 0600) for curl examples.  Never used if a tokens
    file already exists."""
    plain_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    entries = []
    for role in Role:
        token = secrets.token_urlsafe(32)
        out[role.value] = token
        path = plain_dir / role.value
        path.write_text(token + "\n")
        path.chmod(0o600)
        entries.append({"name": f"dev-{role.value}", "role": role.value, "sha256": hash_token(token)})
    tokens_file.parent.mkdir(parents=True, exist_ok=True)
    tokens_file.write_text(
        "# Development tokens (hashes only). Plain values are in var/dev-tokens/, for local use.\n"
        + yaml.safe_dump({"tokens": entries}, sort_keys=False)
    )
    return out
