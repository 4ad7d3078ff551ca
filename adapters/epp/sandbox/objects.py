"""The sandbox registry's objects and the commands that change them (no I/O here).

State is plain dicts so tests can assert on it directly (``sandbox.domains["exempel.se"]["ns"]``).
Semantics follow RFC 5730-5733 where a registrar could notice the difference:

* sponsorship: only the sponsoring registrar may update, delete or renew (2201 otherwise);
* ``client*Prohibited`` statuses block the matching command (2304), except an update that removes
  ``clientUpdateProhibited`` itself;
* updates have set semantics -- adding a name server that is there, or removing one that is not,
  changes nothing -- so re-sending the same update is idempotent;
* a renew must name the current expiry date (2306 otherwise), so a replayed renew cannot renew twice;
* transfers: request (1001, pending, ``pendingTransfer`` status) by another registrar with the
  authInfo (2202 with a wrong one); approve/reject by the sponsor; cancel by the requester; query
  by either.  Every step queues a poll message (<domain:trnData>) for the other party, and a
  completed transfer one for each of the two;
* domain delete: 2305 while a host under the domain is in use (the sandbox keeps no host objects:
  a name server named under the domain stands for one); the domain's contacts stay;
* poll: ``req`` answers 1300 (empty) or 1301 with the oldest message; ``ack`` removes it;
* contact delete: 2305 while a domain references the contact.

What the registry does on its own, tests trigger with a method; each queues the poll message a
registry sends for it: ``approve_pending_transfers()`` (the pending period ran out:
``serverApproved``, both registrars told), ``expire_domain(name)`` and
``registry_delete_domain(name)`` (the sponsor gets the domain's last <domain:infData>),
``registry_update_contact(id, **changes)`` (the sponsor gets the new <contact:infData>) and
``purge_pending_deletes()`` (see ``pending_delete``).  There is no changePoll (RFC 8590) schema
among the official ones, so these are plain <msg> texts with the object's infData.

Registry modes, set on the store (``sandbox.assign_contact_ids = True``), make it behave like a
particular registry where registries differ:

* ``assign_contact_ids``: the registry ignores the id asked for in <contact:create> and answers
  its own in <contact:creData> (Punktum dk); a domain that names the requested id gets 2303;
* ``refuse_contact_delete``: every <contact:delete> is refused by registry policy with this code
  (2305 or 2308), as registries that keep contacts for their own retention do;
* ``auto_approve_transfers``: a transfer request with the right authInfo completes at once
  (1000, ``serverApproved``), as at registries where the auth code alone authorises a transfer;
* ``pending_delete``: <domain:delete> answers 1001 and the domain stays in ``pendingDelete``
  (every change refused with 2304) until ``purge_pending_deletes()`` deletes it and tells the
  sponsor with a <domain:panData>.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from adapters.epp._xmlutil import q, sub
from adapters.epp.xml import NS_CONTACT, NS_DOMAIN, NS_EPP, NSMAP, xs_date

PENDING_TRANSFER_DAYS: Final = 5
REGISTRY_ID: Final = "registry"
"""``upID`` of an object the registry itself changed."""
_CONTACT_MEMBERS: Final = frozenset({"email", "voice", "fax", "status"})
_POSTAL_MEMBERS: Final = frozenset({"name", "org", "street", "city", "sp", "pc", "cc"})
MAX_VALIDITY_YEARS: Final = 10


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def xs_datetime(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.0Z")


def parse_xs_datetime(value: str) -> dt.datetime:
    return dt.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)


def add_years(value: dt.datetime, years: int) -> dt.datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February into a non-leap year
        return value.replace(year=value.year + years, day=28)


def text(el: etree._Element, path: str) -> str | None:
    value = el.findtext(path, namespaces=NSMAP)
    return value.strip() if value is not None else None


def texts(el: etree._Element, path: str) -> list[str]:
    return [(child.text or "").strip() for child in el.findall(path, namespaces=NSMAP)]


def flatten_extension(extension: etree._Element | None) -> dict[str, dict[str, str]]:
    """<extension> as {namespace: {local name: text, "local@attr": value}} for tests to assert on.

    Wrappers (``iis:create``, ``contact-ext:update/chg``, ``neulevel:extension``) are descended
    into; leaves keep their local name, so create and update data land under the same keys.
    """
    parsed: dict[str, dict[str, str]] = {}
    if extension is None:
        return parsed

    def leaves(el: etree._Element, target: dict[str, str]) -> None:
        children = [c for c in el if isinstance(c.tag, str)]
        if not children:
            name = etree.QName(el).localname
            target[name] = (el.text or "").strip()
            for attr, value in el.attrib.items():
                target[f"{name}@{attr!s}"] = str(value)
            return
        for child in children:
            leaves(child, target)

    for child in extension:
        if isinstance(child.tag, str):
            leaves(child, parsed.setdefault(etree.QName(child).namespace or "", {}))
    return parsed


@dataclass
class Outcome:
    """A handler's answer: result code, optional resData and (for poll) msgQ."""

    code: int
    res_data: etree._Element | None = None
    msg_q: etree._Element | None = None


def _res(ns: str, prefix: str, name: str) -> etree._Element:
    return etree.Element(q(ns, name), nsmap={prefix: ns})


def _statuses(body: etree._Element, path: str) -> list[str]:
    return [s.get("s", "") for s in body.findall(path, NSMAP)]


def _merge(items: list[Any], add: list[Any], rem: list[Any]) -> list[Any]:
    kept = [i for i in items if i not in rem]
    return kept + [i for i in add if i not in kept]


class ObjectStore:
    """Contacts, domains, transfers and poll queues of the sandbox registry."""

    def __init__(self) -> None:
        self.domains: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.poll_queues: dict[str, list[dict[str, Any]]] = {}
        self._roids = itertools.count(1)
        self._msg_ids = itertools.count(1)
        self._assigned_ids = itertools.count(1)
        self.assign_contact_ids = False
        self.refuse_contact_delete: int | None = None
        self.auto_approve_transfers = False
        self.pending_delete = False

    # ---- records and seeding -----------------------------------------------------------------

    def _roid(self, kind: str) -> str:
        return f"{kind}{next(self._roids)}-SBX"

    def _contact_record(self, contact_id: str, cl_id: str | None, **values: Any) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": contact_id,
            "roid": self._roid("C"),
            "status": [],
            "postal_info": [],
            "voice": None,
            "fax": None,
            "email": None,
            "auth_pw": None,
            "disclose": None,
            "extensions": {},
            "cl_id": cl_id,
            "cr_id": cl_id,
            "cr_date": xs_datetime(now()),
            "up_id": None,
            "up_date": None,
        }
        record.update(values)
        return record

    def _domain_record(self, name: str, cl_id: str | None, period: int, **values: Any) -> dict[str, Any]:
        created = now()
        record: dict[str, Any] = {
            "name": name,
            "roid": self._roid("D"),
            "period": period,
            "status": [],
            "ns": [],
            "registrant": None,
            "contacts": [],
            "auth_pw": None,
            "extensions": {},
            "cl_id": cl_id,
            "cr_id": cl_id,
            "cr_date": xs_datetime(created),
            "ex_date": xs_datetime(add_years(created, period)),
            "up_id": None,
            "up_date": None,
            "tr_date": None,
            "transfer": None,
            "pending_delete": None,
        }
        record.update(values)
        return record

    def seed_contact(self, contact_id: str, *, cl_id: str) -> None:
        """Put a placeholder contact sponsored by ``cl_id`` into the registry."""
        self.contacts[contact_id] = self._contact_record(
            contact_id,
            cl_id,
            postal_info=[
                {
                    "type": "loc",
                    "name": "Seeded",
                    "org": None,
                    "street": [],
                    "city": "Stockholm",
                    "sp": None,
                    "pc": None,
                    "cc": "SE",
                }
            ],
            email="seeded@example.invalid",
            auth_pw="seeded-pw",
        )

    def seed_domain(self, name: str, *, cl_id: str, registrant: str | None = None, auth_pw: str = "seeded-pw") -> None:
        """Put a domain sponsored by ``cl_id`` into the registry."""
        self.domains[name.lower()] = self._domain_record(name.lower(), cl_id, 1, registrant=registrant, auth_pw=auth_pw)

    def find_contact(self, contact_id: str) -> dict[str, Any] | None:
        folded = contact_id.casefold()
        return next((c for key, c in self.contacts.items() if key.casefold() == folded), None)

    def _linked(self, contact_id: str) -> bool:
        return any(
            d["registrant"] == contact_id or contact_id in (cid for _, cid in d["contacts"])
            for d in self.domains.values()
        )

    def _touch(self, record: dict[str, Any], client_id: str | None) -> None:
        record["up_id"] = client_id
        record["up_date"] = xs_datetime(now())

    # ---- contacts --------------------------------------------------------------------------------

    def _assign_contact_id(self) -> str:
        """A handle in Punktum dk's shape (letters, digits, ``-DK``), never one already in use."""
        while True:
            contact_id = f"SBX{next(self._assigned_ids)}-DK"
            if self.find_contact(contact_id) is None:
                return contact_id

    def contact_create(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        contact_id = text(body, "contact:id") or ""
        if self.assign_contact_ids:
            contact_id = self._assign_contact_id()  # the requested id is ignored, as at .dk
        elif self.find_contact(contact_id) is not None:
            return Outcome(2302)
        postal = []
        for info in body.findall("contact:postalInfo", NSMAP):
            postal.append(
                {
                    "type": info.get("type"),
                    "name": text(info, "contact:name"),
                    "org": text(info, "contact:org"),
                    "street": texts(info, "contact:addr/contact:street"),
                    "city": text(info, "contact:addr/contact:city"),
                    "sp": text(info, "contact:addr/contact:sp"),
                    "pc": text(info, "contact:addr/contact:pc"),
                    "cc": text(info, "contact:addr/contact:cc"),
                }
            )
        record = self._contact_record(
            contact_id,
            client_id,
            postal_info=postal,
            voice=text(body, "contact:voice"),
            fax=text(body, "contact:fax"),
            email=text(body, "contact:email"),
            auth_pw=text(body, "contact:authInfo/contact:pw"),
            disclose=self._disclose(body.find("contact:disclose", NSMAP)),
            extensions=flatten_extension(ext),
        )
        self.contacts[contact_id] = record
        res = _res(NS_CONTACT, "contact", "creData")
        sub(res, NS_CONTACT, "id", contact_id)
        sub(res, NS_CONTACT, "crDate", record["cr_date"])
        return Outcome(1000, res)

    @staticmethod
    def _disclose(el: etree._Element | None) -> dict[str, Any] | None:
        if el is None:
            return None
        return {
            "flag": el.get("flag"),
            "elements": [etree.QName(c).localname for c in el if isinstance(c.tag, str)],
        }

    def contact_info(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        contact = self.find_contact(text(body, "contact:id") or "")
        if contact is None:
            return Outcome(2303)
        return Outcome(1000, self._contact_inf_data(contact, client_id))

    def _contact_inf_data(self, contact: dict[str, Any], client_id: str | None) -> etree._Element:
        """<contact:infData>; the authInfo only for the sponsor (``client_id`` None: never, as in poll)."""
        res = _res(NS_CONTACT, "contact", "infData")
        sub(res, NS_CONTACT, "id", contact["id"])
        sub(res, NS_CONTACT, "roid", contact["roid"])
        statuses = list(contact["status"]) + (["linked"] if self._linked(contact["id"]) else [])
        for status in statuses or ["ok"]:
            sub(res, NS_CONTACT, "status").set("s", status)
        for info in contact["postal_info"]:
            pi = sub(res, NS_CONTACT, "postalInfo")
            pi.set("type", info["type"])
            sub(pi, NS_CONTACT, "name", info["name"])
            if info["org"] is not None:
                sub(pi, NS_CONTACT, "org", info["org"])
            addr = sub(pi, NS_CONTACT, "addr")
            for line in info["street"]:
                sub(addr, NS_CONTACT, "street", line)
            sub(addr, NS_CONTACT, "city", info["city"])
            for name in ("sp", "pc"):
                if info[name] is not None:
                    sub(addr, NS_CONTACT, name, info[name])
            sub(addr, NS_CONTACT, "cc", info["cc"])
        for name in ("voice", "fax"):
            if contact[name]:
                sub(res, NS_CONTACT, name, contact[name])
        sub(res, NS_CONTACT, "email", contact["email"])
        sub(res, NS_CONTACT, "clID", contact["cl_id"])
        sub(res, NS_CONTACT, "crID", contact["cr_id"])
        sub(res, NS_CONTACT, "crDate", contact["cr_date"])
        if contact["up_date"]:
            sub(res, NS_CONTACT, "upID", contact["up_id"])
            sub(res, NS_CONTACT, "upDate", contact["up_date"])
        if client_id is not None and contact["cl_id"] == client_id and contact["auth_pw"]:
            sub(sub(res, NS_CONTACT, "authInfo"), NS_CONTACT, "pw", contact["auth_pw"])
        return res

    def contact_update(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        contact = self.find_contact(text(body, "contact:id") or "")
        if contact is None:
            return Outcome(2303)
        if contact["cl_id"] != client_id:
            return Outcome(2201)
        add = _statuses(body, "contact:add/contact:status")
        rem = _statuses(body, "contact:rem/contact:status")
        if "clientUpdateProhibited" in contact["status"] and "clientUpdateProhibited" not in rem:
            return Outcome(2304)
        chg = body.find("contact:chg", NSMAP)
        postal_changes = chg.findall("contact:postalInfo", NSMAP) if chg is not None else []
        existing_types = {p["type"] for p in contact["postal_info"]}
        for change in postal_changes:
            if change.get("type") not in existing_types and (
                change.find("contact:name", NSMAP) is None or change.find("contact:addr", NSMAP) is None
            ):
                return Outcome(2003)  # a new postalInfo type needs a name and an address
        # Validated: apply everything (one update is atomic).
        contact["status"] = _merge(contact["status"], add, rem)
        for change in postal_changes:
            record = next((p for p in contact["postal_info"] if p["type"] == change.get("type")), None)
            if record is None:
                record = {"type": change.get("type"), "org": None, "street": [], "sp": None, "pc": None}
                contact["postal_info"].append(record)
            if change.find("contact:name", NSMAP) is not None:
                record["name"] = text(change, "contact:name")
            if change.find("contact:org", NSMAP) is not None:
                record["org"] = text(change, "contact:org") or None
            addr = change.find("contact:addr", NSMAP)
            if addr is not None:
                record["street"] = texts(addr, "contact:street")
                for name in ("city", "sp", "pc", "cc"):
                    record[name] = text(addr, f"contact:{name}")
        if chg is not None:
            for name in ("voice", "fax", "email"):
                if chg.find(f"contact:{name}", NSMAP) is not None:
                    contact[name] = text(chg, f"contact:{name}") or None
            if chg.find("contact:authInfo/contact:pw", NSMAP) is not None:
                contact["auth_pw"] = text(chg, "contact:authInfo/contact:pw")
            disclose = chg.find("contact:disclose", NSMAP)
            if disclose is not None:
                contact["disclose"] = self._disclose(disclose)
        for ns, values in flatten_extension(ext).items():
            contact["extensions"].setdefault(ns, {}).update(values)
        self._touch(contact, client_id)
        return Outcome(1000)

    def contact_delete(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        contact = self.find_contact(text(body, "contact:id") or "")
        if contact is None:
            return Outcome(2303)
        if contact["cl_id"] != client_id:
            return Outcome(2201)
        if self.refuse_contact_delete is not None:
            return Outcome(self.refuse_contact_delete)
        if self._linked(contact["id"]):
            return Outcome(2305)
        if "clientDeleteProhibited" in contact["status"]:
            return Outcome(2304)
        del self.contacts[contact["id"]]
        return Outcome(1000)

    # ---- domains ---------------------------------------------------------------------------------

    def _domain(self, body: etree._Element) -> dict[str, Any] | None:
        return self.domains.get((text(body, "domain:name") or "").lower())

    @staticmethod
    def _domain_statuses(domain: dict[str, Any]) -> list[str]:
        statuses = list(domain["status"])
        transfer = domain["transfer"]
        if transfer is not None and transfer["status"] == "pending":
            statuses.append("pendingTransfer")
        if domain.get("pending_delete") is not None:
            statuses.append("pendingDelete")
        return statuses

    @staticmethod
    def _pending_delete(domain: dict[str, Any]) -> bool:
        """In the registry's delete queue: nothing but the purge changes it any more (2304)."""
        return domain.get("pending_delete") is not None

    def _has_subordinate_hosts(self, domain: dict[str, Any]) -> bool:
        """Some domain (this one included) is delegated to a host under this name.

        The sandbox keeps no host objects; a host name in use under the domain stands for the host
        object a registry would hold, which RFC 5731 says blocks the delete (2305).
        """
        suffix = "." + domain["name"]
        return any(host.lower().endswith(suffix) for d in self.domains.values() for host in d["ns"])

    def domain_create(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        name = (text(body, "domain:name") or "").lower()
        if name in self.domains:
            return Outcome(2302)
        registrant = text(body, "domain:registrant")
        contacts = [(c.get("type") or "", (c.text or "").strip()) for c in body.findall("domain:contact", NSMAP)]
        referenced = ([registrant] if registrant else []) + [cid for _, cid in contacts]
        if any(self.find_contact(cid) is None for cid in referenced):
            return Outcome(2303)
        period_el = body.find("domain:period", NSMAP)
        period = int((period_el.text or "1").strip()) if period_el is not None else 1
        if period > MAX_VALIDITY_YEARS:
            return Outcome(2306)
        domain = self._domain_record(
            name,
            client_id,
            period,
            ns=texts(body, "domain:ns/domain:hostObj"),
            registrant=registrant,
            contacts=contacts,
            auth_pw=text(body, "domain:authInfo/domain:pw"),
            extensions=flatten_extension(ext),
        )
        self.domains[name] = domain
        res = _res(NS_DOMAIN, "domain", "creData")
        sub(res, NS_DOMAIN, "name", name)
        sub(res, NS_DOMAIN, "crDate", domain["cr_date"])
        sub(res, NS_DOMAIN, "exDate", domain["ex_date"])
        return Outcome(1000, res)

    def domain_check(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        """<domain:chkData>: a name is available unless it is registered (reason "In use")."""
        res = _res(NS_DOMAIN, "domain", "chkData")
        for name in texts(body, "domain:name"):
            cd = sub(res, NS_DOMAIN, "cd")
            taken = name.lower() in self.domains
            sub(cd, NS_DOMAIN, "name", name).set("avail", "0" if taken else "1")
            if taken:
                sub(cd, NS_DOMAIN, "reason", "In use")
        return Outcome(1000, res)

    def domain_info(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        domain = self._domain(body)
        if domain is None:
            return Outcome(2303)
        return Outcome(1000, self._domain_inf_data(domain, client_id))

    def _domain_inf_data(self, domain: dict[str, Any], client_id: str | None) -> etree._Element:
        """<domain:infData>; the authInfo only for the sponsor (``client_id`` None: never, as in poll)."""
        res = _res(NS_DOMAIN, "domain", "infData")
        sub(res, NS_DOMAIN, "name", domain["name"])
        sub(res, NS_DOMAIN, "roid", domain["roid"])
        for status in self._domain_statuses(domain) or ["ok"]:
            sub(res, NS_DOMAIN, "status").set("s", status)
        if domain["registrant"]:
            sub(res, NS_DOMAIN, "registrant", domain["registrant"])
        for role, cid in domain["contacts"]:
            sub(res, NS_DOMAIN, "contact", cid).set("type", role)
        if domain["ns"]:
            ns = sub(res, NS_DOMAIN, "ns")
            for host in domain["ns"]:
                sub(ns, NS_DOMAIN, "hostObj", host)
        sub(res, NS_DOMAIN, "clID", domain["cl_id"])
        sub(res, NS_DOMAIN, "crID", domain["cr_id"])
        sub(res, NS_DOMAIN, "crDate", domain["cr_date"])
        if domain["up_date"]:
            sub(res, NS_DOMAIN, "upID", domain["up_id"])
            sub(res, NS_DOMAIN, "upDate", domain["up_date"])
        sub(res, NS_DOMAIN, "exDate", domain["ex_date"])
        if domain["tr_date"]:
            sub(res, NS_DOMAIN, "trDate", domain["tr_date"])
        if client_id is not None and domain["cl_id"] == client_id and domain["auth_pw"]:
            sub(sub(res, NS_DOMAIN, "authInfo"), NS_DOMAIN, "pw", domain["auth_pw"])
        return res

    def domain_update(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        domain = self._domain(body)
        if domain is None:
            return Outcome(2303)
        if domain["cl_id"] != client_id:
            return Outcome(2201)

        def contacts(path: str) -> list[tuple[str, str]]:
            return [(c.get("type") or "", (c.text or "").strip()) for c in body.findall(path, NSMAP)]

        add_ns = texts(body, "domain:add/domain:ns/domain:hostObj")
        rem_ns = texts(body, "domain:rem/domain:ns/domain:hostObj")
        add_c, rem_c = contacts("domain:add/domain:contact"), contacts("domain:rem/domain:contact")
        add_s, rem_s = _statuses(body, "domain:add/domain:status"), _statuses(body, "domain:rem/domain:status")
        registrant_el = body.find("domain:chg/domain:registrant", NSMAP)
        registrant = (registrant_el.text or "").strip() if registrant_el is not None else None
        auth_pw = text(body, "domain:chg/domain:authInfo/domain:pw")
        if self._pending_delete(domain):
            return Outcome(2304)
        if "clientUpdateProhibited" in domain["status"] and "clientUpdateProhibited" not in rem_s:
            return Outcome(2304)
        referenced = [cid for _, cid in add_c] + ([registrant] if registrant else [])
        if any(self.find_contact(cid) is None for cid in referenced):
            return Outcome(2303)
        domain["ns"] = _merge(domain["ns"], add_ns, rem_ns)
        domain["contacts"] = _merge(domain["contacts"], add_c, rem_c)
        domain["status"] = _merge(domain["status"], add_s, rem_s)
        if registrant is not None:
            domain["registrant"] = registrant or None
        if auth_pw is not None:
            domain["auth_pw"] = auth_pw
        for ns, values in flatten_extension(ext).items():
            domain["extensions"].setdefault(ns, {}).update(values)
        self._touch(domain, client_id)
        return Outcome(1000)

    def domain_delete(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        domain = self._domain(body)
        if domain is None:
            return Outcome(2303)
        if domain["cl_id"] != client_id:
            return Outcome(2201)
        statuses = self._domain_statuses(domain)
        if {"clientDeleteProhibited", "pendingTransfer", "pendingDelete"} & set(statuses):
            return Outcome(2304)
        if self._has_subordinate_hosts(domain):
            return Outcome(2305)
        if self.pending_delete:
            # Queued for deletion: still registered, but nothing changes it any more; the purge
            # deletes it and tells the sponsor with a <domain:panData> (RFC 5731 section 3.3).
            domain["pending_delete"] = {"since": xs_datetime(now()), "sv_trid": f"SBX-DEL-{domain['roid']}"}
            return Outcome(1001)
        del self.domains[domain["name"]]
        return Outcome(1000)

    def domain_renew(self, body: etree._Element, ext: etree._Element | None, client_id: str | None) -> Outcome:
        domain = self._domain(body)
        if domain is None:
            return Outcome(2303)
        if domain["cl_id"] != client_id:
            return Outcome(2201)
        if "clientRenewProhibited" in domain["status"] or self._pending_delete(domain):
            return Outcome(2304)
        if xs_date(text(body, "domain:curExpDate")) != xs_date(domain["ex_date"]):
            return Outcome(2306)  # RFC 5731: curExpDate must match, which stops a replayed renew
        period_el = body.find("domain:period", NSMAP)
        period = int((period_el.text or "1").strip()) if period_el is not None else 1
        new_expiry = add_years(parse_xs_datetime(domain["ex_date"]), period)
        if new_expiry > add_years(now(), MAX_VALIDITY_YEARS):
            return Outcome(2306)
        domain["ex_date"] = xs_datetime(new_expiry)
        res = _res(NS_DOMAIN, "domain", "renData")
        sub(res, NS_DOMAIN, "name", domain["name"])
        sub(res, NS_DOMAIN, "exDate", domain["ex_date"])
        return Outcome(1000, res)

    # ---- transfers -------------------------------------------------------------------------------

    @staticmethod
    def _trn_data(domain: dict[str, Any]) -> etree._Element:
        transfer = domain["transfer"]
        res = _res(NS_DOMAIN, "domain", "trnData")
        sub(res, NS_DOMAIN, "name", domain["name"])
        sub(res, NS_DOMAIN, "trStatus", transfer["status"])
        sub(res, NS_DOMAIN, "reID", transfer["re_id"])
        sub(res, NS_DOMAIN, "reDate", transfer["re_date"])
        sub(res, NS_DOMAIN, "acID", transfer["ac_id"])
        sub(res, NS_DOMAIN, "acDate", transfer["ac_date"])
        if transfer["ex_date"]:
            sub(res, NS_DOMAIN, "exDate", transfer["ex_date"])
        return res

    def _queue(self, client_id: str, message: str, res_data: etree._Element) -> None:
        """Put a message for ``client_id`` at the end of its poll queue."""
        self.poll_queues.setdefault(client_id, []).append(
            {"id": str(next(self._msg_ids)), "q_date": xs_datetime(now()), "msg": message, "res_data": res_data}
        )

    def _notify(self, client_id: str, message: str, domain: dict[str, Any]) -> None:
        """A transfer message: the text plus the transfer as it now stands (<domain:trnData>)."""
        self._queue(client_id, message, self._trn_data(domain))

    def _complete_transfer(self, domain: dict[str, Any], status: str) -> None:
        """Move the domain to the requester; both registrars hear of it.

        The gaining registrar learns it now holds the domain, the losing one that it no longer does
        (a server-approved transfer is the first the losing registrar's systems hear of the outcome).
        """
        transfer = domain["transfer"]
        transfer["status"] = status
        transfer["ac_date"] = xs_datetime(now())
        domain["cl_id"] = transfer["re_id"]
        domain["ex_date"] = transfer["ex_date"]
        domain["tr_date"] = xs_datetime(now())
        message = "Transfer approved" if status == "clientApproved" else "Transfer completed"
        self._notify(transfer["re_id"], message, domain)
        self._notify(transfer["ac_id"], message, domain)

    def _cancel_transfer_of(self, domain: dict[str, Any]) -> None:
        """A pending transfer of a domain that goes away ends as ``serverCancelled`` (the requester is told)."""
        transfer = domain["transfer"]
        if transfer is not None and transfer["status"] == "pending":
            transfer["status"] = "serverCancelled"
            transfer["ac_date"] = xs_datetime(now())
            self._notify(transfer["re_id"], "Transfer cancelled", domain)

    def domain_transfer(
        self, op: str, body: etree._Element, ext: etree._Element | None, client_id: str | None
    ) -> Outcome:
        domain = self._domain(body)
        if domain is None or client_id is None:
            return Outcome(2303)
        transfer = domain["transfer"]
        pending = transfer is not None and transfer["status"] == "pending"
        auth_pw = text(body, "domain:authInfo/domain:pw")
        if op == "request":
            if domain["cl_id"] == client_id:
                return Outcome(2106)  # already the sponsor
            if pending:
                return Outcome(2300)
            if "clientTransferProhibited" in domain["status"] or self._pending_delete(domain):
                return Outcome(2304)
            if auth_pw != domain["auth_pw"]:
                return Outcome(2202)
            period_el = body.find("domain:period", NSMAP)
            period = int((period_el.text or "1").strip()) if period_el is not None else 1
            requested = now()
            domain["transfer"] = {
                "status": "pending",
                "re_id": client_id,
                "re_date": xs_datetime(requested),
                "ac_id": domain["cl_id"],
                "ac_date": xs_datetime(requested + dt.timedelta(days=PENDING_TRANSFER_DAYS)),
                "ex_date": xs_datetime(add_years(parse_xs_datetime(domain["ex_date"]), period)),
            }
            if self.auto_approve_transfers:
                self._complete_transfer(domain, "serverApproved")
                return Outcome(1000, self._trn_data(domain))
            self._notify(domain["cl_id"], "Transfer requested", domain)
            return Outcome(1001, self._trn_data(domain))
        if op == "query":
            if transfer is None:
                return Outcome(2301)
            if client_id not in (transfer["re_id"], transfer["ac_id"]) and auth_pw != domain["auth_pw"]:
                return Outcome(2201)
            return Outcome(1000, self._trn_data(domain))
        if not pending:
            return Outcome(2301)
        assert transfer is not None
        if op in ("approve", "reject"):
            if domain["cl_id"] != client_id:
                return Outcome(2201)
            if op == "approve":
                self._complete_transfer(domain, "clientApproved")
            else:
                transfer["status"] = "clientRejected"
                self._notify(transfer["re_id"], "Transfer rejected", domain)
            return Outcome(1000, self._trn_data(domain))
        if op == "cancel":
            if transfer["re_id"] != client_id:
                return Outcome(2201)
            transfer["status"] = "clientCancelled"
            self._notify(transfer["ac_id"], "Transfer cancelled", domain)
            return Outcome(1000, self._trn_data(domain))
        return Outcome(2005)

    # ---- what the registry does on its own ---------------------------------------------------------
    # Called by tests (and nothing else): each is an event a real registry's clock or staff cause,
    # and each ends in a poll message for the registrar concerned, as real registries send them.

    def _existing_domain(self, name: str) -> dict[str, Any]:
        domain = self.domains.get(name.lower())
        if domain is None:
            raise LookupError("no such domain in the sandbox")
        return domain

    def approve_pending_transfers(self) -> list[str]:
        """The pending period ran out: every pending transfer is ``serverApproved``; returns the names."""
        names = []
        for domain in list(self.domains.values()):
            transfer = domain["transfer"]
            if transfer is not None and transfer["status"] == "pending":
                self._complete_transfer(domain, "serverApproved")
                names.append(domain["name"])
        return names

    def purge_pending_deletes(self) -> list[str]:
        """The registry's delete run: domains in ``pendingDelete`` go, each sponsor gets a <domain:panData>."""
        names = []
        for domain in [d for d in self.domains.values() if self._pending_delete(d)]:
            res = _res(NS_DOMAIN, "domain", "panData")
            sub(res, NS_DOMAIN, "name", domain["name"]).set("paResult", "1")
            sub(sub(res, NS_DOMAIN, "paTRID"), NS_EPP, "svTRID", domain["pending_delete"]["sv_trid"])
            sub(res, NS_DOMAIN, "paDate", xs_datetime(now()))
            del self.domains[domain["name"]]
            self._queue(domain["cl_id"], "Domain deleted", res)
            names.append(domain["name"])
        return names

    def _remove_by_registry(self, name: str, message: str) -> None:
        domain = self._existing_domain(name)
        snapshot = self._domain_inf_data(domain, None)  # as it was, without its authInfo
        self._cancel_transfer_of(domain)
        del self.domains[domain["name"]]
        self._queue(domain["cl_id"], message, snapshot)

    def expire_domain(self, name: str) -> None:
        """The domain reached its expiry unrenewed and is deleted; the sponsor is told ("Domain expired").

        Its contacts stay: they are objects of their own, which the registrar deletes (or not).
        """
        self._remove_by_registry(name, "Domain expired")

    def registry_delete_domain(self, name: str) -> None:
        """The registry deletes the domain itself (policy, a court order); the sponsor is told."""
        self._remove_by_registry(name, "Domain deleted by the registry")

    def registry_update_contact(self, contact_id: str, **changes: Any) -> None:
        """The registry changes a contact (e.g. an address it validated); the sponsor is told.

        ``changes`` are record members (``email``, ``voice``, ``fax``, ``status``) or postal ones
        (``name``, ``org``, ``street``, ``city``, ``sp``, ``pc``, ``cc``, set on every postalInfo).
        The message carries the contact's <contact:infData> as it now is, without its authInfo.
        """
        contact = self.find_contact(contact_id)
        if contact is None:
            raise LookupError("no such contact in the sandbox")
        unknown = set(changes) - _CONTACT_MEMBERS - _POSTAL_MEMBERS
        if unknown:
            raise ValueError(f"not a contact member: {sorted(unknown)}")
        for key, value in changes.items():
            if key in _POSTAL_MEMBERS:
                for info in contact["postal_info"]:
                    info[key] = list(value) if key == "street" else value
            else:
                contact[key] = list(value) if key == "status" else value
        contact["up_id"] = REGISTRY_ID
        contact["up_date"] = xs_datetime(now())
        self._queue(contact["cl_id"], "Contact updated by the registry", self._contact_inf_data(contact, None))

    # ---- poll --------------------------------------------------------------------------------------

    def poll(self, op: str, msg_id: str | None, client_id: str) -> Outcome:
        queue = self.poll_queues.setdefault(client_id, [])
        if op == "req":
            if not queue:
                return Outcome(1300)
            message = queue[0]
            msg_q = etree.Element(q(NS_EPP, "msgQ"))
            msg_q.set("count", str(len(queue)))
            msg_q.set("id", message["id"])
            sub(msg_q, NS_EPP, "qDate", message["q_date"])
            sub(msg_q, NS_EPP, "msg", message["msg"])
            return Outcome(1301, message["res_data"], msg_q)
        if op == "ack":
            if msg_id is None:
                return Outcome(2003)
            index = next((i for i, m in enumerate(queue) if m["id"] == msg_id), None)
            if index is None:
                return Outcome(2303)
            del queue[index]
            msg_q = etree.Element(q(NS_EPP, "msgQ"))
            msg_q.set("count", str(len(queue)))
            msg_q.set("id", msg_id)
            return Outcome(1000, None, msg_q)
        return Outcome(2005)
