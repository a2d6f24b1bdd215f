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
        ("[[pbx]]\nname = 'a'\n[[pbx]]\nname = 'a'\n", "pbx", "names must differ"),
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
