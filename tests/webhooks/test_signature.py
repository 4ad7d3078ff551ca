"""The pure parts: the Standard Webhooks signature (against the spec's published example), event bodies,
which status change is which event, and the callback URL rules."""

from __future__ import annotations

import json

import pytest

from gateway.webhooks import signature
from gateway.webhooks.events import BODY_KEYS, DATA_KEYS, event_body, status_event
from gateway.webhooks.urls import BadCallbackUrl, check_callback_url


def test_signature_matches_the_standard_webhooks_example() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = signature.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signature.verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, f"v1,bogus {sig}")
    assert not signature.verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, sig)


def test_new_secrets_are_random_and_usable() -> None:
    a, b = signature.new_secret(), signature.new_secret()
    assert a != b and a.startswith("whsec_") and len(signature.secret_key(a)) == 32
    with pytest.raises(ValueError):
        signature.secret_key("plain")


def test_event_body_holds_ids_states_and_codes_only() -> None:
    raw = event_body("evt_1", "registration.failed", registration_id="r1", order_ref="ORD-1", status="failed",
                     code="2306", timestamp="2025-01-01T00:00:00.000000Z")
    data = json.loads(raw)
    assert set(data) == BODY_KEYS and set(data["data"]) == DATA_KEYS


@pytest.mark.parametrize("old, new, refused, event", [
    ("delivering", "delivered", False, "registration.delivered"),
    ("delivered", "delivered", False, None),
    ("delivering", "failed", False, "registration.failed"),
    ("delivering", "failed", True, "registration.blocked"),
    ("accepted", "delivering", False, None),
    (None, "blocked", False, "registration.blocked"),
])
def test_status_events(old: str | None, new: str, refused: bool, event: str | None) -> None:
    assert status_event(old, new, refused=refused) == event


@pytest.mark.parametrize("url, allow", [
    ("https://hooks.example.com/in?x=1", False), ("https://hooks.example.com:8443/in", False),
    ("https://93.184.216.34/in", False), ("http://127.0.0.1:8080/in", True), ("http://[::1]/in", True),
    ("https://localhost/in", True),
])
def test_good_urls(url: str, allow: bool) -> None:
    assert check_callback_url(url, allow_loopback_http=allow) == url


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/in", "https://127.0.0.1/in", "https://localhost/in", "http://hooks.example.com/in",
    "https://192.168.1.1/in", "https://169.254.169.254/latest", "https://[fd00::1]/in", "https://a@b.example.com/",
    "https://hooks.example.com/in#x", "https://hooks.example.com/ in", "https://exa_mple.com/", "https:///in",
    "https://hooks.example.com:0/", "https://hooks.example.com:99999/", "https://x." + "a" * 2100 + ".com/",
    "javascript:alert(1)", "https://hooks.example.123/",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(BadCallbackUrl):
        check_callback_url(url, allow_loopback_http=False)
