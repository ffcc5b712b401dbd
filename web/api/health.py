"""Service health."""

from flask_smorest import Blueprint

from recommender.learning import active_version_name
from web.api.schemas import HealthOut
from web.db import get_db, store

blp = Blueprint("health", __name__, url_prefix="/", description="Service health")


@blp.route("/healthz")
@blp.response(200, HealthOut)
def healthz():
    """Whether the service is up, which model it serves and how many items it knows."""
    db = get_db()
    version, _ = store().recommender.model(db)
    active = active_version_name(db)
    fallback = active is not None and active != version
    note = (f"the active model {active} could not be loaded; serving {version} instead"
            if fallback else None)
    return {"status": "ok", "model_version": version,
            "catalog_items": store().recommender.catalog_items(db),
            "model_fallback": fallback, "model_note": note}
