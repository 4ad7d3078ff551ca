"""The staff pages' Art. 30 record and the policy explainer, from the gateway's one RightsService."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import ValidationError

from gateway.auth import Role
from gateway.errors import ExplainInvalid, InputError, PolicyRefusal
from gateway.http.context import services
from gateway.http.pages.core import N_, STAFF_ROLES, checked_form, page, render, ui_gettext
from gateway.http.pages.session import Session
from gateway.http.problems import json_response
from gateway.models import IdScheme, Registrant
from gateway.policy.loader import PolicySet

# -- Art. 30 -------------------------------------------------------------------------------------------

@page(*STAFF_ROLES)
async def art30_page(request: web.Request, session: Session) -> web.StreamResponse:
    record = await services(request).rights.art30()
    return render(request, "art30.html", session, r=record)


@page(*STAFF_ROLES)
async def art30_json(request: web.Request, session: Session) -> web.StreamResponse:
    record = await services(request).rights.art30()
    stamp = str(record["generated_at"])[:10]
    return json_response(record, headers={"Content-Disposition": f'attachment; filename="art30-{stamp}.json"'})


# -- the explainer -------------------------------------------------------------------------------------

#: Form fields of the sample registrant, in order: (name, label).
EXPLAIN_FIELDS = ("tld", "kind", "name", "organisation", "id_scheme", "id_value", "street", "city", "postal_code",
                  "country", "email", "phone", "language", "citizenship")
EXPLAIN_DEFAULTS = {"tld": "se", "kind": "person", "country": "SE", "language": "sv"}


def _opt(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def registrant_from_form(form: Mapping[str, str]) -> Registrant:
    """The sample registrant, validated by the same model the ordering API uses."""
    street = [line.strip() for line in form.get("street", "").splitlines() if line.strip()]
    data: dict[str, Any] = {
        "kind": form.get("kind", "").strip(), "name": form.get("name", "").strip(),
        "address": {"street": street, "city": form.get("city", "").strip(), "country": form.get("country", "").strip()},
        "email": form.get("email", "").strip(), "phone": form.get("phone", "").strip(),
        "language": form.get("language", "").strip() or "sv",
    }
    for name, target in (("organisation", data), ("citizenship", data), ("postal_code", data["address"])):
        value = _opt(form, name)
        if value is not None:
            target[name] = value
    scheme, value = _opt(form, "id_scheme"), _opt(form, "id_value")
    if (scheme is None) != (value is None):
        raise ExplainInvalid(N_("give both the national ID scheme and its value, or neither"),
                             errors=[{"loc": ["national_id"], "msg": "scheme and value go together"}])
    if scheme is not None:
        data["national_id"] = {"scheme": scheme, "value": value}
    try:
        return Registrant.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors(include_input=False)]
        raise ExplainInvalid(N_("some fields are not valid (see below)"), errors=errors) from None


def _explain_context(policies: PolicySet) -> dict[str, Any]:
    return {"schemes": [s.value for s in IdScheme], "tlds": sorted(policies.by_tld)}


@page(Role.PRIVACY)
async def explain_get(request: web.Request, session: Session) -> web.StreamResponse:
    rights = services(request).rights
    return render(request, "explain.html", session, f=EXPLAIN_DEFAULTS, plan=None, error=None, errors=[],
                  **_explain_context(rights.policies))


@page(Role.PRIVACY)
async def explain_post(request: web.Request, session: Session) -> web.StreamResponse:
    form: MultiDictProxy[str] = await checked_form(request, session)
    rights = services(request).rights
    values = {k: form.get(k, "") for k in EXPLAIN_FIELDS}
    try:
        plan = rights.explain(registrant_from_form(form), form.get("tld", ""))
    except (InputError, PolicyRefusal) as err:
        errors = err.extra.get("errors", []) if isinstance(err, ExplainInvalid) else []
        said = ui_gettext(request, session)(err.detail)  # the page's language where the catalogue has it
        return render(request, "explain.html", session, status=err.status, f=values, plan=None, error=said,
                      errors=errors, **_explain_context(rights.policies))
    return render(request, "explain.html", session, f=values, plan=plan, error=None, errors=[],
                  **_explain_context(rights.policies))
