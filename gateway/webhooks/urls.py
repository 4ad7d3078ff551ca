"""What a callback URL must be: absolute ``https`` to a public host, or, only where the operator allows it
(``GATEWAY_WEBHOOKS_ALLOW_LOOPBACK_HTTP``, for development and tests), ``http`` on a loopback address.

Refused: user info (credentials in a URL end up in logs), fragments, non-ASCII or whitespace, IP literals
that are not globally routable (private, link-local, ...: the gateway must not be turned against its own
network), and anything longer than ``MAX_URL``.  A hostname is not resolved here: what it resolves to
at sending is not checked."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_URL = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOOPBACK_NAMES = ("localhost",)


class BadCallbackUrl(ValueError):
    """Why a URL is refused (the message names the rule, never the URL)."""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    ip = _ip(host)
    return ip.is_loopback if ip is not None else host in _LOOPBACK_NAMES


def check_callback_url(url: str, *, allow_loopback_http: bool) -> str:
    """``url`` if it may receive webhooks; raises ``BadCallbackUrl`` saying why not."""
    if len(url) > MAX_URL:
        raise BadCallbackUrl(f"must be at most {MAX_URL} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise BadCallbackUrl("must be ASCII without spaces or control characters (use punycode)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadCallbackUrl("is not a valid URL") from None
    if parts.scheme not in ("https", "http"):
        raise BadCallbackUrl("must be an https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadCallbackUrl("must not carry user info")
    if parts.fragment or url.endswith("#"):
        raise BadCallbackUrl("must not have a fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise BadCallbackUrl("must name a host")
    if port == 0:
        raise BadCallbackUrl("must not use port 0")
    loopback = is_loopback(host)
    if parts.scheme == "http" and not (allow_loopback_http and loopback):
        raise BadCallbackUrl("must be an https URL")
    if loopback:
        if not allow_loopback_http:
            raise BadCallbackUrl("must not point at a loopback address")
        return url
    ip = _ip(host)
    if ip is not None:
        if not ip.is_global:
            raise BadCallbackUrl("must not point at a private, reserved or link-local address")
        return url
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise BadCallbackUrl("must name a public host name")
    return url
