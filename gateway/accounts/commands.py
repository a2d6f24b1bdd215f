"""``gateway users add|passwd|disable|enable|list|audit``: people's accounts.

A password is never given on the command line (it would stay in the shell's
history and show in the process list): it is asked twice without echo on a
terminal, or read as one line from standard input with ``--password-stdin`` for
scripts. Every input is checked before the password is asked; a refusal is one
line (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any

from gateway.accounts.roles import ROLES
from gateway.accounts.service import AccountError, AccountService, check_username
from gateway.accounts.web import audit_json
from gateway.clock import Clock, utc_iso
from gateway.config import Config
from gateway.store import Store
from gateway.store.accounts import AUDIT_PAGE_MAX
from gateway.tables import render


def register(sub: Any) -> None:
    users = sub.add_parser("users", help="people's accounts for the dashboard, and the audit log")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    roles = ", ".join(f"{r.code} ({'/'.join(r.unit_kinds)})" for r in ROLES.values())
    add = users_sub.add_parser("add", help="a new account")
    add.add_argument("username", help="the login name: 2-32 letters, digits, '.', '_', '-'")
    add.add_argument("--role", required=True, help=f"the role, with its unit's kind: {roles}")
    add.add_argument("--unit", required=True, help="the unit's code (LZ-DC-01)")
    add.add_argument("--name", default="", help="the person's name as shown (张伟)")
    _password_stdin(add)
    add.set_defaults(handler=_add)
    passwd = users_sub.add_parser("passwd", help="a new password (open sessions end)")
    passwd.add_argument("username")
    _password_stdin(passwd)
    passwd.set_defaults(handler=_passwd)
    disable = users_sub.add_parser("disable", help="refuse an account's logins; its sessions end")
    disable.add_argument("username")
    disable.set_defaults(handler=_disable, disabled=True)
    enable = users_sub.add_parser("enable", help="allow a disabled account again")
    enable.add_argument("username")
    enable.set_defaults(handler=_disable, disabled=False)
    listing = users_sub.add_parser("list", help="every account, its role, unit and state")
    listing.add_argument("--json", action="store_true", help="as JSON, for tools")
    listing.set_defaults(handler=_list)
    audit = users_sub.add_parser("audit", help="the audit log, newest first")
    audit.add_argument("--user", default=None, help="only this person's lines")
    audit.add_argument("--limit", type=int, default=50, help=f"lines (1-{AUDIT_PAGE_MAX}, 50)")
    audit.add_argument("--json", action="store_true", help="as JSON, for tools")
    audit.set_defaults(handler=_audit)


def _password_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password as one line from standard input (scripts)",
    )


def _actor() -> str:
    """Who runs the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise AccountError("no password on standard input")
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise AccountError("no terminal to ask the password on: pass --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def _refused(exc: AccountError) -> int:
    print(f"gateway users: {exc}", file=sys.stderr)
    return 1


async def _add(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock()) as store:
        accounts = AccountService(store, config.web)
        try:
            await accounts.check_add(args.username, args.role, args.unit, args.name)
            password = await asyncio.to_thread(_read_password, args.password_stdin)
            user = await accounts.add(
                args.username,
                args.role,
                args.unit,
                password,
                display_name=args.name,
                actor=_actor(),
            )
        except AccountError as exc:
            return _refused(exc)
    print(f"added {user.username}: {user.role} of {user.unit_code} {user.unit_name}")
    return 0


async def _passwd(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock()) as store:
        accounts = AccountService(store, config.web)
        try:
            check_username(args.username)
            await accounts.user(args.username)
            password = await asyncio.to_thread(_read_password, args.password_stdin)
            user = await accounts.passwd(args.username, password, actor=_actor())
        except AccountError as exc:
            return _refused(exc)
    print(f"new password for {user.username}; their open sessions ended")
    return 0


async def _disable(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock()) as store:
        accounts = AccountService(store, config.web)
        try:
            user = await accounts.disable(args.username, actor=_actor(), disabled=args.disabled)
        except AccountError as exc:
            return _refused(exc)
    if args.disabled:
        print(f"disabled {user.username}; their open sessions ended")
    else:
        print(f"enabled {user.username}")
    return 0


async def _list(config: Config, args: argparse.Namespace) -> int:
    async with Store.configured(config, Clock()) as store:
        users = await store.accounts.users()
    if args.json:
        rows = [
            {
                "username": u.username,
                "name": u.display_name,
                "role": u.role,
                "unit": u.unit_code,
                "active": u.active,
                "created_at": utc_iso(u.created_at),
                "password_changed_at": utc_iso(u.password_changed_at),
            }
            for u in users
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    if not users:
        print("no accounts yet: add one with `gateway users add NAME --role R --unit CODE`")
        return 0
    print(
        render(
            ["用户名", "姓名", "角色", "单位", "状态"],
            [
                [
                    u.username,
                    u.display_name,
                    ROLES[u.role].name,
                    f"{u.unit_code} {u.unit_name}",
                    "启用" if u.active else "已停用",
                ]
                for u in users
            ],
        )
    )
    return 0


async def _audit(config: Config, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= AUDIT_PAGE_MAX:
        print(f"gateway users audit: --limit must be 1 to {AUDIT_PAGE_MAX}", file=sys.stderr)
        return 1
    clock = Clock()
    async with Store.configured(config, clock) as store:
        entries = await store.accounts.audit_entries(limit=args.limit, actor=args.user)
    if args.json:
        rows = [audit_json(e) for e in entries]
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    print(
        render(
            ["时间", "谁", "角色", "地址", "操作", "对象", "说明"],
            [
                [
                    f"{clock.local(e.at):%Y-%m-%d %H:%M:%S}",
                    e.actor,
                    e.role,
                    e.address,
                    e.action,
                    e.target,
                    e.detail,
                ]
                for e in entries
            ],
        )
    )
    return 0
