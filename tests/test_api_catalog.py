"""GET /api/v1/items."""

from tests.conftest import assert_error


def test_items_page_and_total(alice):
    body = alice.get("/api/v1/items?limit=10").get_json()
    assert len(body["items"]) == 10
    assert body["total"] >= 440
    item = body["items"][0]
    for key in ("item_id", "kind", "title", "artist", "director", "year", "duration_s", "tags",
                "spotify_uri", "aftercare"):
        assert key in item


def test_items_filter_by_kind_mood_and_words(alice):
    films = alice.get("/api/v1/items?kind=film&limit=200").get_json()
    assert films["total"] >= 100
    assert all(i["kind"] == "film" and i["artist"] is None for i in films["items"])
    grief = alice.get("/api/v1/items?mood=grief&limit=200").get_json()
    assert grief["total"] > 0 and all("grief" in i["tags"] for i in grief["items"])
    tears = alice.get("/api/v1/items?q=tears%20in%20heaven").get_json()
    assert any(i["title"] == "Tears in Heaven" and i["artist"] == "Eric Clapton"
               for i in tears["items"])


def test_offset_pages_do_not_overlap(alice):
    first = alice.get("/api/v1/items?limit=20&offset=0").get_json()["items"]
    second = alice.get("/api/v1/items?limit=20&offset=20").get_json()["items"]
    assert not {i["item_id"] for i in first} & {i["item_id"] for i in second}


def test_an_offset_past_the_end_is_an_empty_page(alice):
    total = alice.get("/api/v1/items?limit=1").get_json()["total"]
    for offset in (total, total + 1, 2**63, 10**30):   # 2**63 once overflowed SQLite: a 500
        r = alice.get(f"/api/v1/items?offset={offset}")
        assert r.status_code == 200, (offset, r.get_json())
        assert r.get_json() == {"items": [], "total": total}
    assert len(alice.get(f"/api/v1/items?offset={total - 1}").get_json()["items"]) == 1


def test_out_of_range_query_is_422(alice):
    assert_error(alice.get("/api/v1/items?limit=0"), 422, mentions="limit")
    assert_error(alice.get("/api/v1/items?limit=201"), 422, mentions="limit")
    assert_error(alice.get("/api/v1/items?offset=-1"), 422, mentions="offset")
    assert_error(alice.get("/api/v1/items?kind=podcast"), 422, mentions="kind")
    assert_error(alice.get("/api/v1/items?mood=elated"), 422, mentions="elated")


def test_healthz_count_follows_a_catalogue_import(client):
    import io

    from recommender.catalog.importer import import_csv

    before = client.get("/healthz").get_json()["catalog_items"]
    assert client.get("/healthz").get_json()["catalog_items"] == before
    csv_text = ("kind,title,artist,director,year,duration_s,tags,spotify_id\n"
                "song,A Song Nobody Knew,New Band,,2020,200,grief,\n")
    with client.application.extensions["goodcry"].session_factory() as db:
        assert import_csv(db, io.StringIO(csv_text)).added == 1
    assert client.get("/healthz").get_json()["catalog_items"] == before + 1
