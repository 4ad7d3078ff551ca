"""Staff accounts on both real stores: passwords (argon2id, rehashed when the parameters change), log-in
failures that look alike, throttling per user name and per address, sessions that any instance ends, and
the admin rules."""

from __future__ import annotations

import datetime as dt
from typing import Literal, cast

import pytest
from argon2 import Parameters, PasswordHasher, extract_parameters

from gateway.errors import (
    AccountConflict,
    AccountNotFound,
    BadInput,
    LastAdmin,
    LoginFailed,
    LoginThrottled,
    WeakPassword,
)
from gateway.services.accounts import AccountService, SessionPolicy, ThrottlePolicy, login_keys, session_id
from gateway.store.accounts import AccountStore
from gateway.store.base import Store
from tests.store import conftest as store_fixtures
from tests.store.conftest import StoreSpec

# the store fixtures of the contract suite: ``store`` and ``store_spec`` on SQLite and on PostgreSQL
pg_cluster = store_fixtures.pg_cluster
pg_dsn = store_fixtures.pg_dsn
store_spec = store_fixtures.store_spec
store = store_fixtures.store

PASSWORD = "correct horse battery"
#: Cheap parameters: the tests are about behaviour, not cost (one test checks the rehash to the defaults).
CHEAP = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def service(store: Store, clock: Clock, hasher: PasswordHasher = CHEAP) -> AccountService:
    return AccountService(cast(AccountStore, store), hasher=hasher, clock=clock,
                          throttle=ThrottlePolicy(max_failures=5, window_s=900),
                          sessions=SessionPolicy(ttl_s=8 * 3600, idle_s=3600, touch_s=60))


@pytest.fixture
def svc(store: Store, clock: Clock) -> AccountService:
    return service(store, clock)


async def test_accounts_are_added_listed_and_names_are_unique(svc: AccountService) -> None:
    a = await svc.add("Anna.Berg", role="privacy", display_name="Anna Berg", password=PASSWORD, lang="en")
    assert a.name == "anna.berg" and a.display_name == "Anna Berg" and a.active and not a.is_admin
    assert a.password_hash is not None and a.password_hash.startswith("$argon2id$") and PASSWORD not in a.password_hash
    await svc.add("olle", role="auditor", password=PASSWORD)
    assert [x.name for x in await svc.all_accounts()] == ["anna.berg", "olle"]
    assert (await svc.get("olle")).lang == "sv"
    with pytest.raises(AccountConflict):
        await svc.add("anna.berg", role="auditor", password=PASSWORD)
    with pytest.raises(WeakPassword):
        await svc.add("kort", role="privacy", password="short")
    with pytest.raises(BadInput):
        await svc.add("no spaces", role="privacy", password=PASSWORD)
    with pytest.raises(BadInput):
        await svc.add("ordering", role="ordering", password=PASSWORD)
    with pytest.raises(AccountNotFound):
        await svc.get("nobody")


async def test_login_succeeds_only_with_the_right_password_of_an_active_account(svc: AccountService) -> None:
    await svc.add("anna", role="privacy", password=PASSWORD)
    assert (await svc.login("anna", PASSWORD, "192.0.2.1")).name == "anna"
    assert (await svc.login(" ANNA ", PASSWORD, "192.0.2.1")).name == "anna"  # names are case-insensitive
    failures = []
    for name, password in (("anna", PASSWORD + "x"), ("nobody", PASSWORD), ("anna", "")):
        with pytest.raises(LoginFailed) as err:
            await svc.login(name, password, "192.0.2.2")
        failures.append((err.value.code, err.value.detail))
    assert len(set(failures)) == 1  # an unknown name and a wrong password are answered alike
    await svc.add("admin", role="privacy", password=PASSWORD, is_admin=True)
    await svc.disable("anna", by="admin")
    with pytest.raises(LoginFailed) as err:
        await svc.login("anna", PASSWORD, "192.0.2.3")
    assert (err.value.code, err.value.detail) == failures[0]
    await svc.enable("anna")
    assert (await svc.login("anna", PASSWORD, "192.0.2.3")).name == "anna"


async def test_throttling_per_name_and_per_address_in_the_store(svc: AccountService, clock: Clock) -> None:
    await svc.add("anna", role="privacy", password=PASSWORD)
    await svc.add("bo", role="privacy", password=PASSWORD)
    for i in range(5):  # five wrong guesses for anna, from five addresses
        with pytest.raises(LoginFailed):
            await svc.login("anna", "wrong password!", f"198.51.100.{i}")
    with pytest.raises(LoginThrottled):  # even the right password is not checked now
        await svc.login("anna", PASSWORD, "203.0.113.9")
    assert (await svc.login("bo", PASSWORD, "203.0.113.9")).name == "bo"  # another name is not held up
    clock.advance(minutes=15, seconds=1)
    assert (await svc.login("anna", PASSWORD, "203.0.113.9")).name == "anna"  # failures aged out

    for i in range(5):  # one address guessing five names (existing or not)
        with pytest.raises(LoginFailed):
            await svc.login(f"guess{i}", "wrong password!", "192.0.2.66")
    with pytest.raises(LoginThrottled):
        await svc.login("bo", PASSWORD, "192.0.2.66")
    assert (await svc.login("bo", PASSWORD, "192.0.2.67")).name == "bo"


async def test_the_throttle_is_shared_by_instances_and_stores_no_names(
    store_spec: StoreSpec, store: Store, clock: Clock
) -> None:
    other_store = await store_spec.open()
    try:
        one, two = service(store, clock), service(other_store, clock)
        await one.add("anna", role="privacy", password=PASSWORD)
        for i in range(3):
            with pytest.raises(LoginFailed):
                await one.login("anna", "wrong password!", f"198.51.100.{i}")
        for i in range(2):
            with pytest.raises(LoginFailed):
                await two.login("anna", "wrong password!", f"198.51.100.{10 + i}")
        with pytest.raises(LoginThrottled):
            await one.login("anna", PASSWORD, "203.0.113.1")
        keys = login_keys("anna", "198.51.100.1")
        since = (clock.now - dt.timedelta(hours=1)).isoformat()
        counts = await cast(AccountStore, store).login_failures(keys, since)
        assert counts == {keys[0]: 5, keys[1]: 1} and all("anna" not in k and "198." not in k for k in keys)
    finally:
        await other_store.close()


async def test_sessions_end_by_logout_revocation_disabling_and_a_new_password_on_every_instance(
    store_spec: StoreSpec, store: Store, clock: Clock
) -> None:
    other_store = await store_spec.open()
    try:
        one, two = service(store, clock), service(other_store, clock)
        admin = await one.add("admin", role="privacy", password=PASSWORD, is_admin=True)
        anna = await one.add("anna", role="auditor", password=PASSWORD)
        cookie, stored = await one.start_session(anna, user_agent="Mozilla/5.0")
        assert stored.id == session_id(cookie) and cookie not in stored.id
        found = await two.session(cookie)  # another instance finds it in the store
        assert found is not None and found[1].name == "anna" and found[0].user_agent != "Mozilla/5.0"
        assert await two.session(cookie + "x") is None and await two.session(None) is None

        await one.logout(stored.id)
        assert await two.session(cookie) is None

        c1, _ = await one.start_session(anna)
        c2, _ = await one.start_session(anna)
        assert await two.revoke_sessions("anna") == 2
        assert await one.session(c1) is None and await one.session(c2) is None

        c3, _ = await one.start_session(anna)
        await two.disable("anna", by="admin")
        assert await one.session(c3) is None
        await two.enable("anna")
        assert await one.session(c3) is None  # enabling does not bring old sessions back

        mine, kept = await one.start_session(admin)
        elsewhere, _ = await one.start_session(admin)
        await two.set_password("admin", "a new password for admin", keep_session=kept.id)
        assert await one.session(mine) is not None and await one.session(elsewhere) is None
        assert [s.id for s in await one.live_sessions("admin")] == [kept.id]
    finally:
        await other_store.close()


async def test_sessions_expire_when_idle_and_at_their_end(svc: AccountService, clock: Clock) -> None:
    anna = await svc.add("anna", role="privacy", password=PASSWORD)
    cookie, _ = await svc.start_session(anna)
    clock.advance(minutes=59)
    assert await svc.session(cookie) is not None  # and last_seen_at is written (older than touch_s)
    clock.advance(minutes=59)
    assert await svc.session(cookie) is not None  # seen 59 minutes ago: still alive
    clock.advance(minutes=61)
    assert await svc.session(cookie) is None  # idle for more than an hour

    cookie, _ = await svc.start_session(anna)
    for _ in range(16):  # used every half hour, it still ends after eight hours
        clock.advance(minutes=30)
        alive = await svc.session(cookie)
    assert alive is None


async def test_a_hash_with_old_parameters_is_replaced_at_the_next_login(store: Store, clock: Clock) -> None:
    old = service(store, clock)
    await old.add("anna", role="privacy", password=PASSWORD)
    before = (await old.get("anna")).password_hash
    stronger = service(store, clock, PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1))
    await stronger.login("anna", PASSWORD, None)
    after = (await stronger.get("anna")).password_hash
    assert before is not None and after is not None and after != before and "t=2" in after
    assert (await stronger.login("anna", PASSWORD, None)).name == "anna"


async def test_first_admin_and_last_admin_rules(svc: AccountService) -> None:
    admin = await svc.create_admin("root", PASSWORD, lang="en")
    assert admin.is_admin and admin.role == "privacy"
    with pytest.raises(AccountConflict):
        await svc.create_admin("second", PASSWORD)
    with pytest.raises(LastAdmin):
        await svc.disable("root")
    await svc.add("eva", role="privacy", password=PASSWORD, is_admin=True)
    with pytest.raises(LastAdmin):
        await svc.disable("eva", by="eva")  # never yourself
    await svc.disable("root", by="eva")
    with pytest.raises(LastAdmin):
        await svc.disable("eva")
    # locked out: --force makes an existing account an active admin with a new password
    again = await svc.create_admin("root", "the way back in, again", force=True)
    assert again.is_admin and again.active
    assert (await svc.login("root", "the way back in, again", None)).name == "root"


async def test_oidc_subjects_link_one_account_each(svc: AccountService) -> None:
    await svc.add("anna", role="privacy")  # no password: OpenID Connect only
    await svc.add("bo", role="auditor", password=PASSWORD)
    with pytest.raises(LoginFailed):
        await svc.login("anna", "", None)
    with pytest.raises(LoginFailed):
        await svc.oidc_login("idp|anna")
    await svc.link_oidc("anna", "idp|anna")
    assert (await svc.oidc_login("idp|anna")).name == "anna"
    with pytest.raises(AccountConflict):
        await svc.link_oidc("bo", "idp|anna")
    await svc.link_oidc("anna", None)
    with pytest.raises(LoginFailed):
        await svc.oidc_login("idp|anna")


class CountingHasher(PasswordHasher):
    """argon2-cffi's hasher, noting the parameters of every hash it verifies against (the work it does)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8 * 1024, parallelism=1)
        self.verified: list[Parameters] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(extract_parameters(hash if isinstance(hash, str) else hash.decode()))
        return super().verify(hash, password)


async def test_every_failure_does_the_work_of_a_wrong_password(store: Store, clock: Clock) -> None:
    """An unknown name, a disabled account and one without a password each cost one argon2 verification with
    the account hashes' parameters, exactly as a wrong password does: the time taken tells nothing."""
    hasher = CountingHasher()
    svc = service(store, clock, hasher)
    await svc.add("anna", role="privacy", password=PASSWORD)
    await svc.add("admin", role="privacy", password=PASSWORD, is_admin=True)
    await svc.add("gone", role="privacy", password=PASSWORD)
    await svc.disable("gone", by="admin")
    await svc.add("sso", role="privacy")
    real = extract_parameters(cast(str, (await svc.get("anna")).password_hash))
    for name in ("anna", "nobody", "gone", "sso", "x" * 300):
        hasher.verified.clear()
        with pytest.raises(LoginFailed):
            await svc.login(name, "wrong password!", None)
        assert hasher.verified == [real], name
        clock.advance(minutes=16)  # out of the throttle's window
