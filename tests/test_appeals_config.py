"""The appeals channels' credentials in the configuration's layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config
from gateway.config import ConfigError, Secret

TOKEN = "wechat-0123456789abcdef"


def test_a_channel_token_from_a_table_per_channel(tmp_path: Path) -> None:
    """[appeals.channels.wechat] token = … sets that channel's credential."""
    path = tmp_path / "gateway.toml"
    path.write_text(f'[appeals.channels.wechat]\ntoken = "{TOKEN}"\n', encoding="utf-8")
    loaded = config.load(path)
    assert loaded.appeals.channels_wechat_token == Secret(TOKEN)
    assert not loaded.appeals.channels_web_token


def test_a_channel_token_from_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    """GATEWAY_APPEALS_CHANNELS_<NAME>_TOKEN overrides the file's value."""
    path = tmp_path / "gateway.toml"
    path.write_text('[appeals.channels.web]\ntoken = "file-0123456789abcdef"\n', encoding="utf-8")
    loaded = config.load(path, env={"GATEWAY_APPEALS_CHANNELS_WEB_TOKEN": TOKEN})
    assert loaded.appeals.channels_web_token == Secret(TOKEN)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[appeals.channels.fax]\ntoken = "fax-0123456789abcdef"\n', "channels_fax_token"),
        ('[appeals.channels.web]\ntoken = "short"\n', "channels_web_token"),
        ("[appeals]\nchannels = 3\n", "appeals.channels"),
        ("[appeals]\nsimilarity_threshold = 1.5\n", "similarity_threshold"),
    ],
)
def test_a_bad_appeals_setting_names_its_key(tmp_path: Path, text: str, key: str) -> None:
    """An unknown channel, a weak token or an out-of-range value stops the start, naming it."""
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=key) as caught:
        config.load(path)
    assert "short" not in str(caught.value)
