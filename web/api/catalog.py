"""The vocabulary and the catalogue."""

from flask_smorest import Blueprint

from recommender.store.catalog import search_items
from recommender.store.models import CatalogItem
from recommender.vocabulary import default_vocabulary
from web.api.auth_token import BEARER, token_required
from web.api.schemas import ItemsOut, ItemsQuery, MoodsOut
from web.db import get_db

blp = Blueprint("catalog", __name__, url_prefix="/api/v1", description="Moods and catalogue")


def item_document(item: CatalogItem) -> dict:
    return {
        "item_id": item.id, "kind": item.kind, "title": item.title,
        "artist": item.artist, "director": item.director, "year": item.year,
        "duration_s": item.duration_s, "duration_estimated": item.duration_estimated,
        "intensity": item.intensity, "tags": item.tag_list, "spotify_uri": item.spotify_uri,
        "aftercare": item.aftercare,
    }


@blp.route("/moods")
@blp.response(200, MoodsOut)
def moods():
    """The moods a session can be asked for."""
    return {"moods": [{"id": m.id, "label": m.label, "description": m.description}
                      for m in default_vocabulary().moods]}


@blp.route("/items")
@blp.arguments(ItemsQuery, location="query")
@blp.response(200, ItemsOut)
@blp.doc(security=BEARER)
@token_required
def items(query):
    """A page of the catalogue, filtered by kind, mood or words."""
    page, total = search_items(get_db(), kind=query.get("kind"), mood=query.get("mood"),
                               q=query.get("q"), limit=query["limit"], offset=query["offset"])
    return {"items": [item_document(i) for i in page], "total": total}
