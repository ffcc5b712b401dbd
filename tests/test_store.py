"""The store itself: the schema the migrations build is the one the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from recommender.store.db import make_engine, upgrade
from recommender.store.models import Base


def test_the_migrated_schema_is_the_models_schema(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
