"""`serve` recognises a database at the newest schema without loading Alembic; that shortcut must agree with
Alembic itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from cargohold.db.migrate import alembic_config, head_revisions, is_current, upgrade

pytestmark = pytest.mark.backend_independent


def test_head_revisions_are_alembics_heads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert head_revisions() == set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def test_a_fresh_database_is_migrated_and_then_recognised_as_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert not is_current(url)
    upgrade(url)
    assert is_current(url)
    upgrade(url)


def test_settings_and_the_engine_agree_on_the_embedded_database(tmp_path: Path) -> None:
    from cargohold import config
    from cargohold.db import engine

    assert config.sqlite_url(tmp_path) == engine.sqlite_url(tmp_path)
