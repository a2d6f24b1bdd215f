"""Configuration layers and the errors that stop a start."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from gateway import config
from gateway.config import Config, ConfigError, Secret

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file() -> None:
    """With no file the embedded defaults are complete."""
    loaded = config.load()
    assert loaded.source == "defaults"
    assert loaded.pbx[0].name == "main"
    assert loaded.store_path == Path("gateway-data/gateway.sqlite3")


def test_layers_apply_in_order(tmp_path: Path) -> None:
    """File beats defaults, environment beats file, command line beats environment."""
    path = write(
        tmp_path, '[web]\nport = 9000\nhost = "0.0.0.0"\n[[pbx]]\nname = "east"\nport = 6000\n'
    )
    loaded = config.load(
        path,
        env={"GATEWAY_WEB_PORT": "9100", "GATEWAY_PBX_EAST_SECRET": "s3", "HOME": "/x"},
        overrides=["web.port=9200"],
    )
    assert loaded.web.port == 9200
    assert loaded.web.host == "0.0.0.0"
    assert loaded.pbx[0].port == 6000
    assert loaded.pbx[0].secret.reveal() == "s3"


def test_secrets_never_show() -> None:
    """A secret prints as stars in reprs and f-strings."""
    loaded = config.load(env={"GATEWAY_SMS_AUTH_TOKEN": "tok-123"})
    assert "tok-123" not in repr(loaded)
    assert "tok-123" not in f"{loaded.sms.auth_token}"
    assert loaded.sms.auth_token == Secret("tok-123")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[webb]\n", "webb", "unknown section"),
        ("[web]\nprot = 1\n", "web.prot", "unknown key"),
        ('[web]\nport = "80"\n', "web.port", "must be an integer"),
        ("[web]\nport = 8.5\n", "web.port", "must be an integer"),
        ("[sms]\nrate_per_second = true\n", "sms.rate_per_second", "must be a number"),
        ("[[pbx]]\nname = 'a'\n[[pbx]]\nname = 'a'\n", "pbx[1].name", "named twice"),
        ("pbx = []\n", "pbx", "at least one [[pbx]]"),
        ("[[pbx]]\nlines = -1\n", "pbx[0].lines", "from 0"),
        ("[store]\npool_size = 1\n", "store.pool_size", "from 2 to 100"),
        ("[store]\npool_size = 2.5\n", "store.pool_size", "must be an integer"),
        ("[web\n", "(file)", "not valid TOML"),
        ("pbx = 3\n", "pbx", "array of tables"),
    ],
)
def test_bad_file_names_key_and_file(tmp_path: Path, text: str, key: str, reason: str) -> None:
    """A wrong key in the file stops the start naming the key and the file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.key == key
    assert caught.value.source == str(path)
    assert reason in str(caught.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A configuration file that does not exist is reported by its path."""
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        (["web.port=eighty"], {}, "web.port: must be a value of type int"),
        (["web"], {}, "use --set section.key=value"),
        (["pbx.west.port=1"], {}, "no pbx named 'west'"),
        ([], {"GATEWAY_WEB_PROT": "1"}, "unknown key 'prot'"),
        ([], {"GATEWAY_CALLBACKS_SMS_FALLBACK": "maybe"}, "true or false"),
    ],
)
def test_bad_environment_and_command_line(
    overrides: list[str], env: dict[str, str], message: str
) -> None:
    """Bad values from the environment or --set name where they came from."""
    with pytest.raises(ConfigError, match=message):
        config.load(env=env, overrides=overrides)


def _keys(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_example_file_documents_every_key() -> None:
    """gateway.example.toml loads cleanly and lists every key of every section."""
    path = ROOT / "gateway.example.toml"
    loaded = config.load(path)
    assert isinstance(loaded, Config)
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    for name, hint in config.SECTIONS.items():
        section = raw[name][0] if isinstance(raw[name], list) else raw[name]
        item_type = hint.__args__[0] if getattr(hint, "__origin__", None) is tuple else hint
        assert set(section) == _keys(item_type), f"[{name}] in the example differs from the code"


# -- range and form of every key ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[[pbx]]\nport = 99999\n", "pbx[0].port", "from 1 to 65535"),
        ("[[pbx]]\nport = 0\n", "pbx[0].port", "from 1 to 65535"),
        ('[[pbx]]\nauth = "clear"\n', "pbx[0].auth", "one of md5, plain"),
        ('[[pbx]]\ndial_string = "PJSIP/x"\n', "pbx[0].dial_string", "{number}"),
        ("[[pbx]]\nreconnect_min = 60.0\n", "pbx[0].reconnect_min", "must not exceed"),
        ("[web]\nport = -1\n", "web.port", "from 1 to 65535"),
        ('[web]\nhost = "my host"\n', "web.host", "a host name or an IP address"),
        ('[web]\npublic_url = "ftp://x"\n', "web.public_url", "http:// or https://"),
        ('[web]\napi_token = "x"\n', "web.api_token", "at least 16"),
        ('[web]\napi_token = "aaaaaaaaaaaaaaaaaaaa"\n', "web.api_token", "too weak"),
        ('[gateway]\ntimezone = "Mars/Olympus"\n', "gateway.timezone", "timezone name"),
        ('[gateway]\nlog_level = "LOUD"\n', "gateway.log_level", "one of DEBUG"),
        ("[callbacks]\nmax_concurrent_calls = -3\n", "callbacks.max_concurrent_calls", "from 1"),
        ('[callbacks]\nwindows = "9-12"\n', "callbacks.windows", "HH:MM-HH:MM"),
        ("[callbacks]\nexcluded_weekdays = [0]\n", "callbacks.excluded_weekdays", "ISO weekdays"),
        ('[callbacks]\nexcluded_dates = ["10/01"]\n', "callbacks.excluded_dates", "YYYY-MM-DD"),
        ('[callbacks]\norder_deadline_hours = "1,2"\n', "callbacks.order_deadline_hours", "four"),
        ("[callbacks]\nserved_max_age_days = 0\n", "callbacks.served_max_age_days", "from 1"),
        ('[sms]\nfrom_number = "not-a-number"\n', "sms.from_number", "E.164"),
        ("[sms]\nrate_per_second = nan\n", "sms.rate_per_second", "more than 0"),
        ("[sms]\nworkers = 0\n", "sms.workers", "from 1 to 64"),
        ('[sms]\nquiet_start = "25:00"\n', "sms.quiet_start", "HH:MM"),
        ("[hotline]\nworking_days = [8]\n", "hotline.working_days", "ISO weekdays"),
    ],
)
def test_values_out_of_range_name_key_and_file(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    """A value of the right type but out of range or form stops the start, naming key and file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert (caught.value.key, caught.value.source) == (key, str(path))
    assert reason in caught.value.reason


@pytest.mark.parametrize("sender", ["+8610690000001", "+14155550100", "SZPolice", "Police 110", ""])
def test_valid_senders_are_accepted(sender: str) -> None:
    """E.164 numbers and alphanumeric sender ids (or none) are valid sms.from_number values."""
    assert config.load(overrides=[f"sms.from_number={sender}"]).sms.from_number == sender


def test_range_checked_from_environment_and_command_line_too() -> None:
    """Environment and --set values are checked like the file's, naming the variable."""
    with pytest.raises(ConfigError, match=r"GATEWAY_PBX_MAIN_PORT: must be from 1 to 65535"):
        config.load(env={"GATEWAY_PBX_MAIN_PORT": "99999"})
    with pytest.raises(ConfigError, match=r"command line: web\.port: must be from 1 to 65535"):
        config.load(overrides=["web.port=70000"])


def test_weak_token_never_shows_in_the_message(tmp_path: Path) -> None:
    """A refused token is named by its key, never quoted."""
    with pytest.raises(ConfigError) as caught:
        config.load(env={"GATEWAY_WEB_API_TOKEN": "short-secret"})
    assert "short-secret" not in str(caught.value)


def test_plain_auth_is_accepted_with_a_warning() -> None:
    """pbx.auth = "plain" loads but gives a start-up warning naming the PBX; md5 gives none."""
    plain = config.load(overrides=["pbx.main.auth=plain"])
    assert [w for w in config.warnings_of(plain) if "main" in w and "in clear" in w]
    assert config.warnings_of(config.load()) == []


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    """A folder or a non-UTF-8 file given as the configuration is named, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path)
    path = tmp_path / "gbk.toml"
    path.write_bytes("[web]\nhost = '主机'\n".encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        config.load(path)


def test_a_pbx_named_twice_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    """Two [[pbx]] tables with one name (or names that differ only in case, which share
    their GATEWAY_PBX_<NAME>_… settings) stop the start, naming the PBX and both tables."""
    text = "[[pbx]]\nname = 'north'\n[[pbx]]\nname = 'south'\n[[pbx]]\nname = 'north'\n"
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    assert "'north' is named twice" in message and "tables 1 and 3" in message
    assert caught.value.key == "pbx[2].name"
    with pytest.raises(ConfigError, match=r"'North' is named twice.*but for case"):
        config.load(write(tmp_path, "[[pbx]]\nname = 'north'\n[[pbx]]\nname = 'North'\n"))


def test_a_pbx_renamed_onto_another_on_the_command_line_is_refused(tmp_path: Path) -> None:
    """The check runs on the final layers: --set may not give two PBXs one name either."""
    path = write(tmp_path, "[[pbx]]\nname = 'north'\n[[pbx]]\nname = 'south'\n")
    with pytest.raises(ConfigError, match="'north' is named twice"):
        config.load(path, overrides=["pbx.south.name=north"])


def test_lines_per_pbx_default_to_max_concurrent_calls(tmp_path: Path) -> None:
    """A PBX without `lines` has callbacks.max_concurrent_calls lines (the one-PBX
    setting); one with `lines` has its own; 0 is a hotline-only PBX, warned when no
    PBX has lines at all."""
    text = (
        "[callbacks]\nmax_concurrent_calls = 6\n"
        "[[pbx]]\nname = 'north'\nlines = 2\n[[pbx]]\nname = 'south'\n"
        "[[pbx]]\nname = 'desk'\nlines = 0\n"
    )
    loaded = config.load(write(tmp_path, text), env={"GATEWAY_PBX_NORTH_LINES": "3"})
    assert [loaded.lines_of(p) for p in loaded.pbx] == [3, 6, 0]
    assert config.warnings_of(loaded) == []
    none = config.load(overrides=["pbx.main.lines=0"])
    assert [w for w in config.warnings_of(none) if "no callback will be placed" in w]
    with pytest.raises(ConfigError, match="must be from 0 to 1000"):
        config.load(overrides=["pbx.main.lines=1001"])
