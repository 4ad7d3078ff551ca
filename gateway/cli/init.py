"""``gateway init [DIR]``: a production skeleton in DIR (default: ``GATEWAY_VAR_DIR``).

Writes bearer tokens (hashes in ``tokens.yaml``, the plain values in ``tokens/<role>`` to hand out),
the key-encryption key ring, the blind-index key, the checkpoint signing key, the idempotency secret,
an ``endpoints.yaml`` skeleton naming every recipient of the policy files, and ``gateway.env`` with
the ``GATEWAY_*`` settings that point at them.  Files are created mode 0600 and directories 0700;
nothing is ever overwritten: if any of the files exists, nothing is written and the command fails.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from gateway.auth import Role, hash_token
from gateway.errors import ConfigError
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.keys import KEY_SIZE as BLIND_INDEX_KEY_SIZE
from gateway.ledger.keys import KeyRing
from gateway.policy.loader import PolicySet, load_policies
from gateway.settings import Settings

FILE_MODE, DIR_MODE = 0o600, 0o700


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = sub.add_parser("init", help="write a production skeleton: tokens, keys, endpoints (never overwrites)",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    init.add_argument("dir", type=Path, nargs="?", help="where to write (default: GATEWAY_VAR_DIR)")


@dataclass(frozen=True)
class Skeleton:
    directory: Path
    files: dict[str, bytes]  # relative path -> content


def _endpoints_yaml(policies: PolicySet) -> str:
    """Every recipient of the policy files, commented out: uncomment and fill in the ones you use."""
    by = sorted(policies.recipients.items())
    out = [
        "# Where each recipient is reached (GATEWAY_ENDPOINTS_FILE). Secrets never go here: each entry names",
        "# the environment variable that holds it. While `endpoints` is empty every registry is the local",
        "# sandbox; production names every registry it delivers to (replace `{}` by the entries).",
        "endpoints: {}",
    ]
    for rid, p in by:
        if p.protocol == "epp":
            out += [f"  # {rid}:", "  #   host: epp.registry.example", "  #   port: 700",
                    "  #   client_id: YOUR-REGISTRAR-ID", f"  #   password_env: EPP_PASSWORD_{_env(rid)}",
                    "  #   cert_file: /etc/gateway/tls/client.crt", "  #   key_file: /etc/gateway/tls/client.key"]
    out.append("partners: {}")
    for rid, p in by:
        if p.protocol == "https" and p.kind != "address_lookup":
            out += [f"  # {rid}:", "  #   base_url: https://partner.example", f"  #   token_env: TOKEN_{_env(rid)}"]
    for rid, p in by:
        if p.protocol == "escrow":
            out += ["# escrow:", f"#   recipient: {rid}", "#   base_url: https://escrow.example",
                    "#   token_env: ESCROW_TOKEN", "#   agent_public_key_file: /etc/gateway/escrow-agent.pem",
                    "#   registrar_id: YOUR-IANA-ID"]
    out += ["# address_lookup:", "#   base_url: https://lookup.example", "#   token_env: ADDRESS_LOOKUP_TOKEN"]
    out += ["# Recipients you deliberately do not serve: nothing is queued for them (a disabled registry's TLD is",
            "# refused at acceptance). Every other recipient a policy sends to must be configured above, or the",
            "# delivery worker refuses to start.",
            "# disabled: [escrow-agent]"]
    return "\n".join(out) + "\n"


def _env(recipient: str) -> str:
    return recipient.upper().replace("-", "_")


def skeleton(directory: Path, policies: PolicySet) -> tuple[Skeleton, dict[str, str]]:
    """The files ``gateway init`` writes, and the plain tokens by role."""
    tokens = {role.value: secrets.token_urlsafe(32) for role in Role}
    entries = [{"name": f"{role}-1", "role": role, "sha256": hash_token(t)} for role, t in tokens.items()]
    files: dict[str, bytes] = {
        "tokens.yaml": ("# Bearer tokens (SHA-256 hashes only): add one entry per client; `gateway hash-token`\n"
                        + yaml.safe_dump({"tokens": entries}, sort_keys=False)).encode(),
        **{f"tokens/{role}": (t + "\n").encode() for role, t in tokens.items()},
        "keys/kek.json": KeyRing.new().to_json().encode(),
        "keys/blind-index.key": base64.b64encode(secrets.token_bytes(BLIND_INDEX_KEY_SIZE)) + b"\n",
        "keys/checkpoint-signing.pem": CheckpointSigner.generate().private_pem(),
        "secret.key": secrets.token_bytes(32),
        "endpoints.yaml": _endpoints_yaml(policies).encode(),
    }
    d = directory
    files["gateway.env"] = "\n".join([
        "# Settings for this skeleton (e.g. docker compose env_file, or `set -a; . gateway.env`).",
        f"GATEWAY_VAR_DIR={d}",
        f"GATEWAY_TOKENS_FILE={d / 'tokens.yaml'}",
        f"GATEWAY_ENDPOINTS_FILE={d / 'endpoints.yaml'}",
        f"GATEWAY_KEK_FILE={d / 'keys' / 'kek.json'}",
        f"GATEWAY_BLIND_INDEX_KEY_FILE={d / 'keys' / 'blind-index.key'}",
        f"GATEWAY_SIGNING_KEY_FILE={d / 'keys' / 'checkpoint-signing.pem'}",
        f"GATEWAY_SECRET_FILE={d / 'secret.key'}",
        "# GATEWAY_DATABASE_URL=postgresql://gateway@db/gateway",
        "",
    ]).encode()
    return Skeleton(directory, files), tokens


def _mkdir_private(path: Path) -> None:
    if not path.exists():
        path.mkdir(parents=True, mode=DIR_MODE)
        path.chmod(DIR_MODE)  # mkdir's mode is masked by the umask; make it exact


def write(sk: Skeleton) -> None:
    """Write every file with O_EXCL (0600) in 0700 directories; refuse if any exists."""
    existing = [rel for rel in sk.files if (sk.directory / rel).exists() or (sk.directory / rel).is_symlink()]
    if existing:
        raise ConfigError(f"{sk.directory / existing[0]} exists: gateway init never overwrites "
                          f"({len(existing)} of its files already there)")
    _mkdir_private(sk.directory)
    for rel, data in sk.files.items():
        path = sk.directory / rel
        _mkdir_private(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def run(settings: Settings, args: argparse.Namespace) -> int:
    directory = (args.dir or settings.var_dir).absolute()
    sk, _ = skeleton(directory, load_policies(settings.config_dir))
    write(sk)
    print(f"wrote {len(sk.files)} files to {directory} (files 0600, directories 0700)")
    print(f"  tokens: hashes in tokens.yaml; hand out tokens/<role> and delete them ({', '.join(r for r in Role)})")
    print("  keys: keys/kek.json, keys/blind-index.key, keys/checkpoint-signing.pem, secret.key (back them up)")
    print("  endpoints: edit endpoints.yaml, then load gateway.env (GATEWAY_* settings) and run `gateway check-config`")
    return 0
