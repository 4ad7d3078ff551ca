"""Loads ``config/`` and turns every mistake into one precise sentence: file, line, key path, reason.

YAML is composed to nodes first so a pydantic error location can be traced back to the line
that holds the offending key; start-up stops on the first bad file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError
from gateway.policy.schema import FieldCatalog, Jurisdictions, RecipientPolicy

M = TypeVar("M", bound=BaseModel)


class _Loader(yaml.SafeLoader):
    """YAML without the YAML 1.1 surprises: dates stay strings (pydantic checks them and the error
    keeps its line), and only true/false are booleans (so Norway's ``NO`` is a country code)."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to the line of the deepest
    key (or list item) that exists: the line a person would edit."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if pair is None:
                return line
            line = pair[0].start_mark.line + 1
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _parse(path: Path) -> tuple[yaml.Node | None, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__})") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = str(mark.line + 1) if mark is not None else "?"
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}:1: top level must be a mapping")
    return node, data


def load_model(path: Path, model: type[M]) -> M:
    return _load(path, model)[0]


def _load(path: Path, model: type[M]) -> tuple[M, yaml.Node | None]:
    node, data = _parse(path)
    try:
        return model.model_validate(data), node
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        loc = tuple(err["loc"])
        keypath = ".".join(str(p) for p in loc) or "(top level)"
        raise ConfigError(f"{path}:{_line_of(node, loc)}: {keypath}: {err['msg']}") from None


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
        pol, node = _load(path, RecipientPolicy)
        unknown = sorted(set(pol.fields) - set(catalog.fields))
        if unknown:
            line = _line_of(node, ("fields", unknown[0]))
            raise ConfigError(f"{path}:{line}: fields.{unknown[0]}: not a field in fields.yaml")
        if pol.recipient in recipients:
            line = _line_of(node, ("recipient",))
            raise ConfigError(f"{path}:{line}: recipient: '{pol.recipient}' is defined twice")
        recipients[pol.recipient] = pol
        for i, tld in enumerate(pol.tlds):
            if tld in by_tld:
                line = _line_of(node, ("tlds", i))
                raise ConfigError(
                    f"{path}:{line}: tlds.{i}: '.{tld}' already belongs to {by_tld[tld].recipient}"
                )
            by_tld[tld] = pol
    return PolicySet(jurisdictions=jur, catalog=catalog, recipients=recipients, by_tld=by_tld)
