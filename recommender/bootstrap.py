"""Preparing a store for service: migrations, and the bundled catalogue on first start."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender.catalog.importer import import_csv
from recommender.paths import CATALOG_CSV
from recommender.store.catalog import count_items
from recommender.store.db import upgrade

log = logging.getLogger(__name__)


def prepare_store(engine: Engine, session_factory: sessionmaker[Session]) -> int:
    """Migrate the schema and load the bundled catalogue if the store has none.

    Returns the number of catalogue items afterwards.
    """
    upgrade(engine)
    with session_factory() as db:
        count = count_items(db)
        if count == 0 and CATALOG_CSV.exists():
            report = import_csv(db, CATALOG_CSV)
            log.info("loaded the bundled catalogue: %d items", report.added)
            count = count_items(db)
    return count
