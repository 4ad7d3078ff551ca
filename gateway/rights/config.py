"""Rights configuration: retention periods per purpose (``config/retention.yaml``) and the
controller's identity (``config/controller.yaml``).

Both are loaded with the policy loader, so a mistake stops with file, line and key path.  Facts
carry ``source`` and ``confirmed`` like the recipient policies: privacy staff see what to check.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from gateway.policy.loader import load_model
from gateway.policy.schema import ConfigModel, Provenance
from gateway.rights.deadlines import add_months

Lang = Literal["sv", "en"]


class Localised(ConfigModel):
    sv: Annotated[str, Field(min_length=1)]
    en: Annotated[str, Field(min_length=1)]

    def get(self, lang: Lang) -> str:
        return self.sv if lang == "sv" else self.en


class PurposeRetention(Provenance):
    #: How long the values an entry sent stay readable in the log, counted from the entry's
    #: ``recorded_at`` (see ``RetentionConfig.measured_from``).
    period_months: Annotated[int, Field(ge=1, le=240)]
    lawful_basis: Annotated[str, Field(min_length=3)]
    description: Localised
    criteria: Localised

    def expires(self, recorded_at: dt.datetime) -> dt.datetime:
        day = add_months(recorded_at.date(), self.period_months)
        return dt.datetime.combine(day, recorded_at.timetz())


class RetentionConfig(ConfigModel):
    measured_from: Literal["recorded_at"]
    purposes: dict[Annotated[str, Field(pattern=r"^[a-z][a-z_]{1,40}$")], PurposeRetention]


class Authority(Provenance):
    name: str
    short_name: str
    former_name: str | None = None
    url: str
    country: str


class Contact(ConfigModel):
    name: str
    organisation_number: str | None = None
    address: str
    email: str
    phone: str | None = None


class ControllerConfig(ConfigModel):
    placeholder: bool
    controller: Contact
    dpo: Contact | None = None
    supervisory_authority: Authority


#: Used only if ``config/controller.yaml`` is missing: clearly a placeholder.
PLACEHOLDER_CONTROLLER = ControllerConfig(
    placeholder=True,
    controller=Contact(name="[Registrar AB — set config/controller.yaml]", organisation_number=None,
                       address="[address]", email="privacy@registrar.invalid"),
    dpo=None,
    supervisory_authority=Authority(
        name="Integritetsskyddsmyndigheten", short_name="IMY", former_name="Datainspektionen (until 1 Jan 2021)",
        url="https://www.imy.se", country="SE",
        source="../shared/reference/gdpr-transfers.md, Sweden", confirmed=True,
    ),
)


def default_config_dir() -> Path:
    env = os.environ.get("GATEWAY_CONFIG_DIR")
    if env:
        return Path(env)
    from gateway.settings import ROOT

    return ROOT / "config"


def load_retention(config_dir: Path) -> RetentionConfig:
    return load_model(config_dir / "retention.yaml", RetentionConfig)


def load_controller(config_dir: Path) -> ControllerConfig:
    path = config_dir / "controller.yaml"
    if not path.exists():
        return PLACEHOLDER_CONTROLLER
    return load_model(path, ControllerConfig)
