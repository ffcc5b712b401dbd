"""Preparing a store for service: migrations, and the bundled catalogue on first start."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender.catalog.importer import import_csv
from recommender.cry_sessions import Recommender
from recommender.learning import active_version_name
from recommender.paths import CATALOG_CSV
from recommender.store.catalog import count_items
from recommender.store.db import upgrade

log = logging.getLogger(__name__)


def prepare_store(engine: Engine, session_factory: sessionmaker[Session]) -> int:
    """Migrate the schema, load the bundled catalogue if the store has none, and make sure a
    model is there to serve (the content model, trained once, before any worker starts).

    Returns the number of catalogue items afterwards.
    """
    upgrade(engine)
    with session_factory() as db:
        count = count_items(db)
        if count == 0 and CATALOG_CSV.exists():
            report = import_csv(db, CATALOG_CSV)
            log.info("loaded the bundled catalogue: %d items", report.added)
            count = count_items(db)
        if count and active_version_name(db) is None:
            Recommender().model(db)
    return count
