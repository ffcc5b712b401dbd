"""Service health."""

from flask_smorest import Blueprint

from recommender.store.catalog import count_items
from web.api.schemas import HealthOut
from web.db import get_db, store

blp = Blueprint("health", __name__, url_prefix="/", description="Service health")


@blp.route("/healthz")
@blp.response(200, HealthOut)
def healthz():
    """Whether the service is up, which model it serves and how many items it knows."""
    db = get_db()
    version, _ = store().recommender.model(db)
    return {"status": "ok", "model_version": version, "catalog_items": count_items(db)}
