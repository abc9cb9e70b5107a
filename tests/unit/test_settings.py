"""Settings: one object, ``ESPLORA_`` prefix, every variable documented in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from esplora.settings import Settings, default_home, get_settings

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_in_env_example() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^(ESPLORA_[A-Z0-9_]+)=", text, re.M))
    expected = {f"ESPLORA_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_default_home_is_absolute_and_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ESPLORA_HOME")
    monkeypatch.chdir(tmp_path)
    home = Settings().home
    assert home.is_absolute() and home == default_home()
    assert tmp_path not in home.parents


def test_database_defaults_to_a_sqlite_file_under_home(tmp_path: Path) -> None:
    settings = get_settings()
    assert settings.home == (tmp_path / "home").resolve()
    assert settings.resolved_database_url == f"sqlite:///{settings.home / 'esplora.db'}"
    assert settings.resolved_broker_url == "filesystem://"


def test_relative_home_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ESPLORA_HOME", "data")
    assert Settings().home == tmp_path / "data"


def test_analytics_mirror_defaults_under_home_and_can_move(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings()
    assert settings.resolved_analytics_mirror_dir == settings.home / "analytics-mirror"
    assert settings.analytics_mirror_rows == 2_000_000
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ESPLORA_ANALYTICS_MIRROR_DIR", "mirror")
    monkeypatch.setenv("ESPLORA_ANALYTICS_MIRROR_ROWS", "10")
    moved = Settings()
    assert moved.resolved_analytics_mirror_dir == tmp_path / "mirror"
    assert moved.analytics_mirror_rows == 10
