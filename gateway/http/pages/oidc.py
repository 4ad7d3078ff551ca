"""Optional log-in through the registrar's OpenID Connect identity provider: the authorization code flow
with PKCE (S256), a ``state`` and a ``nonce``, the ID token's signature checked against the provider's
published keys (JWKS) and its issuer, audience, nonce and times checked (joserfc, authlib's JOSE library).

Configured with ``GATEWAY_OIDC_ISSUER``, ``GATEWAY_OIDC_CLIENT_ID`` and ``GATEWAY_OIDC_CLIENT_SECRET``
(``GATEWAY_OIDC_REDIRECT_URI`` if the gateway is reached through a proxy: by default the callback URL is
built from the request).  The provider's ``sub`` finds the staff account an admin linked it to
(``gateway accounts link-oidc``, or the accounts page); an identity no account is linked to is refused,
never given an account on the fly, and e-mail addresses or names from the provider are not used at all.

While the browser is at the provider, ``state``, ``nonce``, the PKCE verifier and where to go afterwards
wait in a short-lived cookie scoped to the callback's path, MAC'd with the UI key (so it cannot be forged
or swapped for another flow's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from aiohttp import web
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.errors import LoginFailed
from gateway.http.pages.core import accounts, error_page, public, safe_next, ui_gettext, ui_key
from gateway.http.pages.login import OIDC_ENABLED, start_session

log = structlog.get_logger("gateway.http.pages")

START_PATH = "/ui/login/oidc"
CALLBACK_PATH = "/ui/login/oidc/callback"
FLOW_COOKIE = "rg_oidc"
FLOW_TTL_S = 10 * 60
#: Seconds of clock difference tolerated on ``exp``/``iat``/``nbf``.
LEEWAY_S = 60


class OidcSettings(BaseSettings):
    """``GATEWAY_OIDC_*``: OpenID Connect log-in is on when the issuer and client id are set."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_OIDC_", extra="ignore")

    issuer: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str | None = None
    timeout_s: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


@dataclass
class OidcProvider:
    """One identity provider: its discovery document and keys, fetched when first needed and kept."""

    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str | None = None
    timeout_s: float = 10.0
    _metadata: dict[str, Any] | None = field(default=None, repr=False)
    _keys: KeySet | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, s: OidcSettings) -> OidcProvider | None:
        if not s.enabled:
            return None
        assert s.issuer is not None and s.client_id is not None
        return cls(s.issuer.rstrip("/"), s.client_id, s.client_secret.get_secret_value() if s.client_secret else None,
                   s.redirect_uri, s.timeout_s)

    async def _get_json(self, url: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            r = await http.get(url, headers={"Accept": "application/json"})
        r.raise_for_status()
        data = r.json()
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            meta = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if meta.get("issuer", "").rstrip("/") != self.issuer:
                raise ValueError("the discovery document names another issuer")
            self._metadata = meta
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            self._keys = KeySet.import_key_set(await self._get_json((await self.metadata())["jwks_uri"]))  # type: ignore[arg-type]
        return self._keys

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                 "scope": "openid", "state": state, "nonce": nonce,
                 "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
        return f"{(await self.metadata())['authorization_endpoint']}?{urlencode(query)}"

    async def subject(self, code: str, redirect_uri: str, verifier: str, nonce: str) -> str:
        """Exchange ``code`` for tokens and return the verified ID token's ``sub``."""
        meta = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, "client_id": self.client_id}
        # client_secret_basic when the client has a secret; a public client proves itself by PKCE alone
        auth = httpx.BasicAuth(self.client_id, self.client_secret) if self.client_secret else None
        async with httpx.AsyncClient(timeout=self.timeout_s, auth=auth) as http:
            r = await http.post(meta["token_endpoint"], data=form, headers={"Accept": "application/json"})
        r.raise_for_status()
        id_token = r.json().get("id_token")
        if not isinstance(id_token, str):
            raise ValueError("no ID token in the token response")
        try:
            token = jwt.decode(id_token, await self.keys(), algorithms=["RS256", "ES256", "PS256", "EdDSA"])
        except JoseError:  # a key rotated since we fetched them: once more with fresh keys
            token = jwt.decode(id_token, await self.keys(refresh=True), algorithms=["RS256", "ES256", "PS256", "EdDSA"])
        jwt.JWTClaimsRegistry(
            now=int(time.time()), leeway=LEEWAY_S, iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id}, nonce={"essential": True, "value": nonce},
            sub={"essential": True}, exp={"essential": True},
        ).validate(token.claims)
        return str(token.claims["sub"])


OIDC = web.AppKey("oidc_provider", OidcProvider)


def setup(app: web.Application, provider: OidcProvider | None) -> None:
    """Turn OpenID Connect log-in on for ``app`` (the main app; the pages read it through ``config_dict``)."""
    if provider is not None:
        app[OIDC] = provider
        app[OIDC_ENABLED] = True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _flow_mac(key: bytes, payload: bytes) -> str:
    return _b64(hmac.new(key, b"oidc-flow\x00" + payload, hashlib.sha256).digest())


def encode_flow(key: bytes, flow: dict[str, Any]) -> str:
    payload = json.dumps(flow, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_flow_mac(key, payload)}"


def decode_flow(key: bytes, value: str | None, now: float) -> dict[str, Any] | None:
    if not value or value.count(".") != 1 or len(value) > 2048:
        return None
    body, mac = value.split(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _flow_mac(key, payload)):
        return None
    try:
        flow = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(flow, dict) or not isinstance(flow.get("exp"), int) or flow["exp"] <= now:
        return None
    return flow


def _provider(request: web.Request) -> OidcProvider:
    provider = request.config_dict.get(OIDC)
    if provider is None:
        raise web.HTTPNotFound()
    return provider


def _redirect_uri(request: web.Request, provider: OidcProvider) -> str:
    return provider.redirect_uri or str(request.url.with_path(CALLBACK_PATH).with_query(None))


def _refused(request: web.Request, status: int, text: str) -> web.Response:
    return error_page(request, None, status, "Log-in refused", text)


@public
async def start(request: web.Request) -> web.StreamResponse:
    provider = _provider(request)
    flow = {"state": generate_token(32), "nonce": generate_token(32), "verifier": generate_token(64),
            "next": safe_next(request.query.get("next")), "exp": int(time.time()) + FLOW_TTL_S}
    try:
        url = await provider.authorization_url(_redirect_uri(request, provider), flow["state"], flow["nonce"],
                                               flow["verifier"])
    except (httpx.HTTPError, ValueError, KeyError):
        log.error("ui.oidc_unavailable")
        return _refused(request, 502, ui_gettext(request, None)("The identity provider could not be reached."))
    resp = web.HTTPSeeOther(url)
    resp.set_cookie(FLOW_COOKIE, encode_flow(ui_key(request), flow), max_age=FLOW_TTL_S, path=CALLBACK_PATH,
                    httponly=True, samesite="Lax", secure=request.secure)  # Lax: the provider sends the browser back
    raise resp


@public
async def callback(request: web.Request) -> web.StreamResponse:
    provider = _provider(request)
    _ = ui_gettext(request, None)
    flow = decode_flow(ui_key(request), request.cookies.get(FLOW_COOKIE), time.time())
    state, code = request.query.get("state"), request.query.get("code")
    if flow is None or not state or not hmac.compare_digest(state, str(flow["state"])):
        return _refused(request, 403, _("The log-in expired or was not started here. Try again."))
    if not code or "error" in request.query:
        return _refused(request, 401, _("The identity provider did not log you in."))
    try:
        subject = await provider.subject(code, _redirect_uri(request, provider), str(flow["verifier"]),
                                         str(flow["nonce"]))
        account = await accounts(request).oidc_login(subject)
    except LoginFailed:
        return _refused(request, 403, _("No staff account is linked to that identity. Ask an admin to link it."))
    except (httpx.HTTPError, JoseError, ValueError, KeyError) as exc:
        log.error("ui.oidc_failed", error_type=type(exc).__name__)
        return _refused(request, 401, _("The identity provider's answer could not be verified."))
    resp = await start_session(request, account.name, str(flow["next"]))
    resp.del_cookie(FLOW_COOKIE, path=CALLBACK_PATH)
    raise resp


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/login/oidc", start)
    r.add_get("/login/oidc/callback", callback)
