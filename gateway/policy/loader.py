"""Loads ``config/`` and turns every mistake into one precise sentence: file, line, key path, reason.

YAML is composed to nodes first so a pydantic error location can be traced back to the line
that holds the offending key; start-up stops on the first bad file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError
from gateway.policy.schema import FieldCatalog, Jurisdictions, RecipientPolicy

M = TypeVar("M", bound=BaseModel)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree; deepest line found wins."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if nxt is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def load_model(path: Path, model: type[M]) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "unknown line"
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}:1: top level must be a mapping")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = _line_of(node, loc)
        keypath = ".".join(str(p) for p in loc) or "(top level)"
        raise ConfigError(f"{path}:{line}: {keypath}: {err['msg']}") from None


@dataclass(frozen=True)
class PolicySet:
    """Everything the pure policy engine needs, validated and cross-checked."""

    jurisdictions: Jurisdictions
    catalog: FieldCatalog
    recipients: dict[str, RecipientPolicy]
    by_tld: dict[str, RecipientPolicy]

    def registry_for(self, tld: str) -> RecipientPolicy | None:
        return self.by_tld.get(tld)


def load_policies(config_dir: Path) -> PolicySet:
    jur = load_model(config_dir / "jurisdictions.yaml", Jurisdictions)
    catalog = load_model(config_dir / "fields.yaml", FieldCatalog)
    recipients: dict[str, RecipientPolicy] = {}
    by_tld: dict[str, RecipientPolicy] = {}
    files = sorted((config_dir / "recipients").glob("*.yaml"))
    if not files:
        raise ConfigError(f"{config_dir / 'recipients'}: no recipient policy files")
    for path in files:
        pol = load_model(path, RecipientPolicy)
        unknown = sorted(set(pol.fields) - set(catalog.fields))
        if unknown:
            raise ConfigError(f"{path}: fields.{unknown[0]}: not a field in fields.yaml")
        if pol.recipient in recipients:
            raise ConfigError(f"{path}: recipient: '{pol.recipient}' is defined twice")
        recipients[pol.recipient] = pol
        for tld in pol.tlds:
            if tld in by_tld:
                raise ConfigError(f"{path}: tlds: '.{tld}' already belongs to {by_tld[tld].recipient}")
            by_tld[tld] = pol
    return PolicySet(jurisdictions=jur, catalog=catalog, recipients=recipients, by_tld=by_tld)
