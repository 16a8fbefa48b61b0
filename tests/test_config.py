"""Settings: defaults, config file, IDF_* environment, explicit overrides, in that precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from idf.server.config import Settings


def test_defaults():
    s = Settings.load()
    assert (s.host, s.port) == ("127.0.0.1", 50051)
    assert s.max_message_bytes >= 64 * 1024 * 1024


def test_precedence(tmp_path: Path, monkeypatch):
    config = tmp_path / "idf.toml"
    config.write_text('port = 6000\nhost = "0.0.0.0"\nauth = "api-key"\ngrace_period = 3.5\n')
    assert Settings.load(config).port == 6000
    monkeypatch.setenv("IDF_PORT", "7000")
    s = Settings.load(config)
    assert (s.port, s.host, s.grace_period) == (7000, "0.0.0.0", 3.5)
    assert Settings.load(config, port=8000).port == 8000
    monkeypatch.setenv("IDF_CONFIG", str(config))
    assert Settings.load().host == "0.0.0.0"


@pytest.mark.parametrize(
    "text",
    [
        "port = 70000",
        "max_message_bytes = 10",
        'log_level = "LOUD"',
        "unknown_setting = 1",
        'tls_cert_file = "a.pem"',
    ],
)
def test_bad_values_are_refused(tmp_path: Path, text: str):
    config = tmp_path / "idf.toml"
    config.write_text(text)
    with pytest.raises(ValidationError):
        Settings.load(config)


def test_missing_config_file_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        Settings.load(tmp_path / "nope.toml")


def test_the_production_profile_loads():
    from helpers import REPO

    s = Settings.load(REPO / "deploy" / "idf.production.toml")
    assert s.host == "0.0.0.0" and s.log_format == "json" and s.grace_period == 30.0
