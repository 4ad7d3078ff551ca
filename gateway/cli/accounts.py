"""``gateway accounts …``: staff accounts on the store the settings name.

``create-admin NAME`` makes the first admin (the web page ``/ui/accounts`` is for admins, so someone must
exist first): refused while an active admin exists, unless ``--force``, which is also the way back in when
every admin lost their password (the named account becomes an active admin with the new password and its
sessions end).  ``add``, ``list``, ``disable``, ``enable``, ``passwd``, ``revoke-sessions`` and ``link-oidc``
do what the admin page does.

A password is asked for twice on a terminal, or read from the first line of standard input with
``--password-stdin`` (for scripts; never as an argument, which any local user could read in ``ps``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import cast

from gateway.errors import BadInput
from gateway.services.accounts import STAFF_ROLES, AccountService, check_password
from gateway.settings import Settings
from gateway.store.accounts import AccountStore, StaffAccount

COMMANDS = ("accounts",)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = sub.add_parser("accounts", help="staff accounts for the /ui pages: create-admin, add, list, disable, "
                                               "enable, passwd, revoke-sessions, link-oidc")
    asub = accounts.add_subparsers(dest="accounts_cmd", required=True)

    def account_options(p: argparse.ArgumentParser, *, role_required: bool) -> None:
        p.add_argument("name", help="the log-in name (lower-case letters, digits, . _ -)")
        p.add_argument("--role", choices=STAFF_ROLES, required=role_required,
                       **({} if role_required else {"default": "privacy"}))
        p.add_argument("--display-name", help="the person's name as the pages show it")
        p.add_argument("--lang", choices=("sv", "en"), default="sv", help="the account's page language")
        p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    first = asub.add_parser("create-admin", help="the first admin account (refused if an admin exists, but --force)")
    account_options(first, role_required=False)
    first.add_argument("--force", action="store_true",
                       help="even if an admin exists: make NAME an active admin with a new password")
    add = asub.add_parser("add", help="a staff account")
    account_options(add, role_required=True)
    add.add_argument("--admin", action="store_true", help="may manage accounts")
    add.add_argument("--no-password", action="store_true",
                     help="no password: the account logs in through OpenID Connect only (see link-oidc)")
    listing = asub.add_parser("list", help="every account with its role, state and live sessions")
    listing.add_argument("--json", action="store_true")
    for cmd, text in (("disable", "end the account's use and all its sessions (its name stays in the logs)"),
                      ("enable", "let a disabled account log in again"),
                      ("revoke-sessions", "end every session of the account, on every instance")):
        asub.add_parser(cmd, help=text).add_argument("name")
    passwd = asub.add_parser("passwd", help="set an account's password (its sessions end)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    link = asub.add_parser("link-oidc", help="link the identity provider's subject ('sub') to an account")
    link.add_argument("name")
    link.add_argument("subject", nargs="?", help="the subject; omit it to remove the link")


def read_password(from_stdin: bool) -> str:
    """The new password: one line of standard input, or asked twice on the terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        return check_password(line[:-1] if line.endswith("\n") else line)
    if not sys.stdin.isatty():
        raise BadInput("no terminal to ask for the password on: use --password-stdin")
    first = getpass.getpass("new password: ")
    check_password(first)
    if getpass.getpass("again: ") != first:
        raise BadInput("the two passwords differ")
    return first


def _line(a: StaffAccount, sessions: int) -> str:
    state = "active" if a.active else f"disabled {a.disabled_at}"
    extra = [*(["admin"] if a.is_admin else []), *(["oidc"] if a.oidc_subject else []),
             *(["no password"] if a.password_hash is None else [])]
    return (f"{a.name:<20} {a.role:<8} {a.lang}  {state:<10} {sessions} session{'s' if sessions != 1 else ''}"
            f"{'  (' + ', '.join(extra) + ')' if extra else ''}  {a.display_name}")


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.compose import open_store

    cmd = args.accounts_cmd
    password = None
    if cmd in ("create-admin", "passwd") or (cmd == "add" and not args.no_password):
        password = read_password(args.password_stdin)  # before opening the store: a typo costs nothing
    store = await open_store(settings)
    try:
        svc = AccountService(cast(AccountStore, store))
        if cmd == "create-admin":
            assert password is not None
            a = await svc.create_admin(args.name, password, role=args.role, display_name=args.display_name,
                                       lang=args.lang, force=args.force)
            print(f"admin account {a.name} ({a.role}) is ready: log in at /ui/login")
        elif cmd == "add":
            a = await svc.add(args.name, role=args.role, display_name=args.display_name, password=password,
                              is_admin=args.admin, lang=args.lang)
            print(f"account {a.name} ({a.role}{', admin' if a.is_admin else ''}) added")
        elif cmd == "list":
            rows = [(a, len(await svc.live_sessions(a.name)) if a.active else 0) for a in await svc.all_accounts()]
            if args.json:
                print(json.dumps([{"name": a.name, "display_name": a.display_name, "role": a.role, "admin": a.is_admin,
                                   "lang": a.lang, "created_at": a.created_at, "disabled_at": a.disabled_at,
                                   "oidc_linked": a.oidc_subject is not None, "password": a.password_hash is not None,
                                   "live_sessions": n} for a, n in rows], indent=2, ensure_ascii=False))
            else:
                for a, n in rows:
                    print(_line(a, n))
                print(f"{len(rows)} account{'s' if len(rows) != 1 else ''}")
        elif cmd == "disable":
            await svc.disable(args.name)
            print(f"account {args.name} disabled; its sessions ended")
        elif cmd == "enable":
            await svc.enable(args.name)
            print(f"account {args.name} enabled")
        elif cmd == "passwd":
            assert password is not None
            await svc.set_password(args.name, password)
            print(f"password of {args.name} set; its sessions ended")
        elif cmd == "revoke-sessions":
            n = await svc.revoke_sessions(args.name)
            print(f"{n} session{'s' if n != 1 else ''} of {args.name} ended")
        elif cmd == "link-oidc":
            await svc.link_oidc(args.name, args.subject)
            print(f"account {args.name} {'linked to the given subject' if args.subject else 'unlinked'}")
        return 0
    finally:
        await store.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))
