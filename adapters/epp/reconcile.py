"""Pure functions that make a retried update safe: send only what the registry does not show yet.

After an ambiguous failure (timeout, dropped connection) the update may or may not have been
applied.  ``chg`` members are idempotent (setting a value twice leaves one value), but re-adding a
name server or status that is already there, or removing one that is gone, is an error (2302/2306/
2303) at many registries.  So a retry first reads <info> and narrows ``add``/``rem`` to what is
still missing; ``None`` means nothing is left to do.  No I/O here: unit-tested on values.
"""

from __future__ import annotations

import dataclasses

from adapters.epp.types import ContactUpdate, DomainInfo, DomainUpdate


def _fold(values: tuple[str, ...]) -> set[str]:
    return {v.casefold() for v in values}


def narrow_domain_update(cmd: DomainUpdate, info: DomainInfo) -> DomainUpdate | None:
    """``cmd`` minus what ``info`` shows as already applied; None when nothing is left."""
    hosts = _fold(info.nameservers)
    contacts = {(role, cid.casefold()) for role, cid in info.contacts}
    statuses = set(info.statuses)
    narrowed = dataclasses.replace(
        cmd,
        add_ns=tuple(h for h in cmd.add_ns if h.casefold() not in hosts),
        rem_ns=tuple(h for h in cmd.rem_ns if h.casefold() in hosts),
        add_contacts=tuple(c for c in cmd.add_contacts if (c[0], c[1].casefold()) not in contacts),
        rem_contacts=tuple(c for c in cmd.rem_contacts if (c[0], c[1].casefold()) in contacts),
        add_status=tuple(s for s in cmd.add_status if s not in statuses),
        rem_status=tuple(s for s in cmd.rem_status if s in statuses),
        registrant=(
            None
            if cmd.registrant is not None
            and info.registrant is not None
            and cmd.registrant.casefold() == info.registrant.casefold()
            else cmd.registrant
        ),
    )
    # authInfo and extensions are kept even when everything visible was applied: <info> cannot
    # show them to compare, and setting them again is harmless.
    return None if narrowed.is_empty() else narrowed


def narrow_contact_update(cmd: ContactUpdate, statuses: tuple[str, ...]) -> ContactUpdate | None:
    """``cmd`` with status adds/removes already reflected in ``statuses`` dropped.

    ``chg`` members and extensions are kept: setting them again is harmless and <contact:info>
    does not show every one of them (authInfo, some extensions) to compare.
    """
    present = set(statuses)
    narrowed = dataclasses.replace(
        cmd,
        add_status=tuple(s for s in cmd.add_status if s not in present),
        rem_status=tuple(s for s in cmd.rem_status if s in present),
    )
    has_chg = bool(narrowed.postal_info) or any(
        v is not None for v in (narrowed.voice, narrowed.fax, narrowed.email, narrowed.auth_pw, narrowed.disclose)
    )
    if not (narrowed.add_status or narrowed.rem_status or has_chg or narrowed.extensions):
        return None
    return narrowed
