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


#: Where a retention period starts: ``registration_end`` - when our role for the entry's registration ended
#: (deleted, transferred away, expired; ``registrations.ended_at``), so the values are kept exactly as
#: long as the relationship plus the period; ``recorded_at`` - when the entry was recorded, for purposes
#: that do not last as long as the registration (an order confirmation, marketing).
MeasuredFrom = Literal["registration_end", "recorded_at"]


class PurposeRetention(Provenance):
    #: How long the values an entry sent stay readable in the log, counted from ``measured_from`` (this
    #: purpose's, else ``RetentionConfig.measured_from``).
    period_months: Annotated[int, Field(ge=1, le=240)]
    lawful_basis: Annotated[str, Field(min_length=3)]
    description: Localised
    criteria: Localised
    measured_from: MeasuredFrom | None = None

    def expires(self, recorded_at: dt.datetime) -> dt.datetime:
        day = add_months(recorded_at.date(), self.period_months)
        return dt.datetime.combine(day, recorded_at.timetz())


class RetentionConfig(ConfigModel):
    measured_from: MeasuredFrom
    purposes: dict[Annotated[str, Field(pattern=r"^[a-z][a-z_]{1,40}$")], PurposeRetention]

    def measured(self, purpose: str) -> MeasuredFrom:
        cfg = self.purposes.get(purpose)
        return (cfg.measured_from if cfg is not None else None) or self.measured_from

    def purge_date(self, purpose: str, recorded_at: dt.datetime, ended_at: dt.datetime | None) -> dt.datetime | None:
        """When an entry's sealed values may first be purged; None while that is not known yet (its
        registration is still ours) or never (an unconfigured purpose: check ``purposes`` first).

        Counted from the end of the registration for ``registration_end`` purposes, but never from
        before the entry itself (an entry recorded after the end, such as a late contact update, gets
        its full period): the date is therefore never earlier than ``recorded_at`` plus the period,
        which is what the ledger verifier checks a purge against."""
        cfg = self.purposes.get(purpose)
        if cfg is None:
            return None
        if self.measured(purpose) == "recorded_at":
            return cfg.expires(recorded_at)
        if ended_at is None:
            return None
        return cfg.expires(max(recorded_at, ended_at))


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
