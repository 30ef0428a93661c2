"""Alembic migrations are the only way the schema is made.  These helpers run them over
the app's own engine so SQLite gets the same pragmas as at run time."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from relaydesk.core.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x72656C6179  # "relay": PostgreSQL's advisory lock key for running migrations


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    cfg = alembic_config()

    def _run(connection: Any) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with db.write_engine.connect() as conn:
        # Several processes starting at once (replicas, a deploy) each migrate: on
        # PostgreSQL the first upgrades while the others wait, then find nothing to do.
        # Taken and released outside the upgrade's transaction, so that they see its work.
        locked = conn.dialect.name == "postgresql"
        if locked:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.commit()
        try:
            async with conn.begin():
                await conn.run_sync(_run)
        finally:
            if locked:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                await conn.commit()


async def current_revision(db: Database) -> str | None:
    async with db.read_engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str | None:
    return _scripts().get_current_head()


def schema_behind(revision: str | None) -> bool:
    """Whether a database at ``revision`` must be migrated before this code can run on it:
    an empty one or one at an older revision of ours. A revision this code does not know
    is a newer release's, which migrated past us; not ours to refuse."""
    scripts = _scripts()
    if revision == scripts.get_current_head():
        return False
    return revision is None or revision in {script.revision for script in scripts.walk_revisions()}


async def autogenerate(db: Database, message: str) -> None:
    """For developers: write a new revision from the difference between models and database."""
    cfg = alembic_config()

    def _run(connection: Any) -> None:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)

    async with db.write_engine.begin() as conn:
        await conn.run_sync(_run)
