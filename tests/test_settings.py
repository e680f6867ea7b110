"""The settings: every variable declared once, read with its bounds, and listed in the README
exactly as declared."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings, SettingsError, configuration_table

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_lists_every_variable_as_declared() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert configuration_table() in readme, (
        "README's configuration table differs from hub/settings/sections.py: "
        "paste the output of `python -m hub.settings`"
    )


def test_every_declared_variable_is_read() -> None:
    env = {
        "HUB_PORT": "9001",
        "SYNC_PAGE_LIMIT": "7",
        "SOCKET_EVENTS_PER_SECOND": "2.5",
        "HUB_GC_FREEZE": "0",
        "HUB_CORS_ORIGINS": "https://a.example, https://b.example",
        "HUB_PUBLIC_URL": "https://api.example/",
        "HUB_LOG_LEVEL": "debug",
        "DATABASE_URL": "postgresql://db/hub",
    }
    settings = Settings.from_env(env)
    assert settings.server.port == 9001
    assert settings.messaging.sync_page_limit == 7
    assert settings.sockets.events_per_second == 2.5
    assert settings.server.gc_freeze is False
    assert settings.api.cors_origins == ("https://a.example", "https://b.example")
    assert settings.api.public_url == "https://api.example"
    assert settings.server.log_level == "DEBUG"
    assert settings.storage.database_url == "postgresql://db/hub"
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("variable", "raw", "complaint"),
    [
        ("SYNC_PAGE_LIMIT", "many", "must be a whole number"),
        ("SYNC_PAGE_LIMIT", "0", "must be at least 1"),
        ("DEVICE_TTL_SECONDS", "2", "must be at least 3"),
        ("SOCKET_EVENTS_PER_SECOND", "fast", "must be a number"),
    ],
)
def test_a_bad_value_is_refused_at_start_naming_its_variable(
    variable: str, raw: str, complaint: str
) -> None:
    with pytest.raises(SettingsError, match=f"{variable} {complaint}"):
        Settings.from_env({variable: raw})


def test_defaults_filled_generate_the_dev_secret_once(tmp_path: Path) -> None:
    first = Settings.from_env({"HUB_DATA_DIR": str(tmp_path)}).with_defaults_filled()
    again = Settings.from_env({"HUB_DATA_DIR": str(tmp_path)}).with_defaults_filled()
    assert len(first.accounts.jwt_secret) >= 32
    assert first.accounts.jwt_secret == again.accounts.jwt_secret
    assert first.server.node_id and first.server.node_id != again.server.node_id
    assert (tmp_path / "jwt.secret").stat().st_mode & 0o777 == 0o600
