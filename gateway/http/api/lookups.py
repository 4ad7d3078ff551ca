"""Address lookups (SPAR-style, inbound): verify a Swedish personnummer against the population register.

Used before a .se/.nu registration to check the holder's name and address.  The lookup is itself
processing of personal data, so each one is logged (who asked, what kind of identifier, its blind
index, why, the result category) in the append-only access log; the number itself is never stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.address_lookup import AddressLookupClient
from gateway.auth import Role, require
from gateway.errors import PermanentDeliveryError, ValidationFailed
from gateway.http.context import principal, read_json, services, validation_problem
from gateway.http.problems import json_response
from gateway.models import IdScheme, normalise_national_id

routes = web.RouteTableDef()


class LookupBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, frozen=True,
                              hide_input_in_errors=True)
    personnummer: Annotated[str, Field(min_length=10, max_length=13)]
    purpose: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


@routes.post("/v1/lookups")
async def lookup(request: web.Request) -> web.Response:
    who = principal(request)
    require(who, Role.ORDERING, Role.PRIVACY)
    svc = services(request)
    if svc.address_lookup is None:
        raise PermanentDeliveryError("no address lookup service is configured")
    raw, _ = await read_json(request)
    try:
        body = LookupBody.model_validate_json(raw)
        scheme = IdScheme.SE_SAMORDNINGSNUMMER if int(body.personnummer.replace("-", "")[-6:-4]) > 60 \
            else IdScheme.SE_PERSONNUMMER
        number = normalise_national_id(scheme, body.personnummer)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    except ValueError:
        raise ValidationFailed("not a valid personnummer or samordningsnummer",
                               errors=[{"loc": ["personnummer"], "type": "checksum"}]) from None
    blind = svc.ledger.indexer.index("national_id", number)
    async with AddressLookupClient(svc.address_lookup) as client:
        result = await client.lookup(number, body.purpose, blind_index=blind)
    subjects = await svc.store.find_subjects([("national_id", blind)])
    record = result.record
    await svc.store.record_access(
        who.name, f"address_lookup:{record.kind}:{record.purpose}:{record.category}",
        f"blind:{blind}", subjects[0] if subjects else None, record.at.isoformat(),
    )
    answer: dict[str, Any] = {"category": result.category, "marketing_opt_out": result.marketing_opt_out}
    if result.name is not None:
        answer["name"] = {"given_name": result.name.given_name, "surname": result.name.surname}
    if result.address is not None:
        a = result.address
        answer["address"] = {"street": a.street, "postal_code": a.postal_code, "city": a.city, "care_of": a.care_of}
    return json_response(answer, headers={"Cache-Control": "no-store"})
