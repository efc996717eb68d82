"""The schema changes only through Alembic: one head, and the models match the migrated database."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory


def test_single_head(app: Any, db_session: Any) -> None:
    migrate = app.extensions["migrate"]
    config = migrate.migrate.get_config(migrate.directory)
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_models_match_the_migrated_schema(app: Any, db_session: Any) -> None:
    from core.db import db
    from tagging.segments.facets import include_object

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False, "include_object": include_object})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations differ; run flask db migrate: {diff}"
