"""`gateway users ...`: accounts checked before the password is asked, one line for each
mistake, passwords never on the command line and stored only as argon2id hashes, every
change in the audit log; and what each role sees by the unit tree."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from gateway import cli
from gateway import config as config_module
from gateway.accounts.service import AccountService, LoginRefused
from gateway.clock import Clock
from gateway.store import Store
from gateway.store.seed import demo_city, load_seed
from tests.accounts_support import PASSWORD, PEOPLE, add_people

pytestmark = pytest.mark.usefixtures("restore_logging")

NEW_PASSWORD = "Station-chief-2026"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder whose store holds the demo city and the account of 东关's chief."""

    async def build() -> None:
        async with Store.open(tmp_path / "gateway.sqlite3", Clock()) as store:
            await load_seed(store.units, demo_city(), "demo-city.toml")
            await add_people(store, config_module.load(), "dongguan")

    asyncio.run(build())
    return tmp_path


def users(
    data: Path, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, str, str, io.StringIO]:
    """Run ``gateway users ARGS`` with ``stdin``; exit code, output, errors, the stdin."""
    given = io.StringIO(stdin)
    original = sys.stdin
    sys.stdin = given
    try:
        code = cli.main(
            ["--data-dir", str(data), "--set", "gateway.log_level=WARNING", "users", *args]
        )
    finally:
        sys.stdin = original
    out, err = capsys.readouterr()
    return code, out, err, given


def stored(data: Path) -> dict[str, str]:
    async def read() -> dict[str, str]:
        async with Store.open(data / "gateway.sqlite3", Clock()) as store:
            return {u.username: u.password_hash for u in await store.accounts.users()}

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("zhang", "--role", "station", "--unit", "LZ-NOPE"), "unknown unit 'LZ-NOPE'"),
        (
            ("zhang", "--role", "chief", "--unit", "LZ-DC-01"),
            "unknown role 'chief' (known: leader, supervision, bureau, station, hotline)",
        ),
        (
            ("zhang", "--role", "station", "--unit", "LZ-DC"),
            "role station needs a unit of kind station; LZ-DC is a sub_bureau",
        ),
        (
            ("zhang", "--role", "bureau", "--unit", "LZ-DC-01"),
            "role bureau needs a unit of kind sub_bureau or county_bureau; LZ-DC-01 is a station",
        ),
        (("dongguan", "--role", "station", "--unit", "LZ-DC-01"), "user 'dongguan' already exists"),
        (("zhang wei", "--role", "station", "--unit", "LZ-DC-01"), "bad user name 'zhang wei'"),
    ],
)
def test_a_bad_account_is_one_line_before_the_password_is_asked(
    data: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    """Unknown unit, unknown role, a role not fitting the unit's kind, a taken or bad name:
    one line, exit 1, no password read, nothing added."""
    code, _, err, stdin = users(
        data, capsys, "add", *args, "--password-stdin", stdin=NEW_PASSWORD + "\n"
    )
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [f"gateway users: {err.strip().split(': ', 1)[1]}"]
    assert message in err
    assert stdin.tell() == 0, "the password was read before the account was checked"
    assert set(stored(data)) == {"dongguan"}


@pytest.mark.parametrize(
    ("password", "message"),
    [("short-1", "at least 10 characters"), ("aaaaaaaaaaaa", "at least 5 different")],
)
def test_a_weak_password_is_refused_in_one_line(
    data: Path, capsys: pytest.CaptureFixture[str], password: str, message: str
) -> None:
    """A too short or too plain password is refused, and nothing is added."""
    code, _, err, _ = users(
        data,
        capsys,
        "add",
        "zhang",
        "--role",
        "station",
        "--unit",
        "LZ-DC-02",
        "--password-stdin",
        stdin=password + "\n",
    )
    assert code == 1 and len(err.strip().splitlines()) == 1 and message in err
    assert set(stored(data)) == {"dongguan"}


def test_the_password_is_never_taken_from_the_command_line(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """There is no option to give a password in clear on the command line."""
    with pytest.raises(SystemExit) as stopped:
        users(
            data,
            capsys,
            "add",
            "zhang",
            "--role",
            "station",
            "--unit",
            "LZ-DC-02",
            "--password",
            NEW_PASSWORD,
        )
    assert stopped.value.code == 2
    assert set(stored(data)) == {"dongguan"}


def test_without_a_terminal_the_password_needs_the_stdin_flag(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run from a script without --password-stdin: one line saying so, nothing added."""
    code, _, err, _ = users(
        data,
        capsys,
        "add",
        "zhang",
        "--role",
        "station",
        "--unit",
        "LZ-DC-02",
        stdin=NEW_PASSWORD + "\n",
    )
    assert code == 1 and "pass --password-stdin" in err and len(err.strip().splitlines()) == 1
    assert set(stored(data)) == {"dongguan"}


def test_add_passwd_disable_list_and_audit(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An account added from stdin is stored as an argon2id hash and logs in; a new password
    replaces the old; a disabled account cannot log in; the list and the audit log show it."""
    code, out, _, _ = users(
        data,
        capsys,
        "add",
        "zhang",
        "--role",
        "station",
        "--unit",
        "LZ-DC-02",
        "--name",
        "徐明",
        "--password-stdin",
        stdin=NEW_PASSWORD + "\n",
    )
    assert code == 0 and "zhang: station of LZ-DC-02 西关派出所" in out
    hashed = stored(data)["zhang"]
    assert hashed.startswith("$argon2id$") and NEW_PASSWORD not in hashed

    async def login(password: str) -> str:
        async with Store.open(data / "gateway.sqlite3", Clock()) as store:
            accounts = AccountService(store, config_module.load().web)
            try:
                return (await accounts.login("zhang", password, "10.0.0.9")).user.role
            except LoginRefused:
                return "refused"

    assert asyncio.run(login(NEW_PASSWORD)) == "station"
    assert (
        users(data, capsys, "passwd", "zhang", "--password-stdin", stdin="Renewed-pass-77\n")[0]
        == 0
    )
    assert asyncio.run(login(NEW_PASSWORD)) == "refused"
    assert asyncio.run(login("Renewed-pass-77")) == "station"
    assert users(data, capsys, "disable", "zhang")[0] == 0
    assert asyncio.run(login("Renewed-pass-77")) == "refused"
    code, out, _, _ = users(data, capsys, "list")
    assert code == 0 and "徐明" in out and "已停用" in out and "启用" in out
    code, out, _, _ = users(data, capsys, "list", "--json")
    listed = {u["username"]: u for u in json.loads(out)}
    assert listed["zhang"]["active"] is False and listed["zhang"]["unit"] == "LZ-DC-02"
    assert "$argon2" not in out
    code, out, _, _ = users(data, capsys, "audit", "--json")
    actions = [(e["action"], e["target"]) for e in reversed(json.loads(out))]
    assert actions[-7:] == [
        ("user_add", "zhang"),
        ("login", ""),
        ("user_passwd", "zhang"),
        ("login_failed", "zhang"),
        ("login", ""),
        ("user_disable", "zhang"),
        ("login_failed", "zhang"),
    ]
    assert users(data, capsys, "passwd", "nobody", "--password-stdin", stdin="x\n")[2].strip() == (
        "gateway users: no user 'nobody'"
    )


async def test_each_role_sees_its_units_by_the_tree(store: Store) -> None:
    """Leader and supervision see all; 东城分局 its three stations and itself; a station
    chief his station; the hotline supervisor no unit but the hotline."""
    await load_seed(store.units, demo_city(), "demo-city.toml")
    config = config_module.load()
    await add_people(store, config, *PEOPLE)
    accounts = AccountService(store, config.web)

    async def ids(*codes: str) -> frozenset[int]:
        found = [await store.units.unit_by_code(code) for code in codes]
        return frozenset(u.id for u in found if u is not None)

    scopes = {
        name: await accounts.scope(user)
        for name in PEOPLE
        if (user := await store.accounts.user_by_name(name)) is not None
    }
    assert (scopes["leader"].unit_ids, scopes["leader"].hotline) == (None, True)
    assert (scopes["ducha"].unit_ids, scopes["ducha"].hotline) == (None, True)
    assert scopes["dongcheng"].unit_ids == await ids("LZ-DC", "LZ-DC-01", "LZ-DC-02", "LZ-DC-03")
    assert scopes["dongcheng"].hotline is False
    assert scopes["dongguan"].unit_ids == await ids("LZ-DC-01")
    assert (scopes["hotline"].unit_ids, scopes["hotline"].hotline) == (frozenset(), True)
    dongguan, xiguan = await ids("LZ-DC-01"), await ids("LZ-DC-02")
    assert scopes["dongguan"].sees_unit(next(iter(dongguan)))
    assert not scopes["dongguan"].sees_unit(next(iter(xiguan)))
    assert not scopes["dongguan"].sees_unit(None) and scopes["leader"].sees_unit(None)
    assert PASSWORD  # every account of PEOPLE shares the test password
