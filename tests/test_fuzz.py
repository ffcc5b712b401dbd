"""A property-based fuzz of the whole API from its own OpenAPI document (schemathesis,
in-process against the WSGI app): valid and invalid requests to every operation, some
aimed at the caller's real ids. No answer may be a 5xx, and every 4xx under /api/v1 is the
contract's envelope."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import ApiUser
from tests.spotify_flow import spotify_app_config

EXAMPLES = 8  # per operation and mode: the whole fuzz stays well under two minutes


def fuzz_one(strategy, token: str, real_ids: dict, statuses: set) -> None:
    """Run one operation's strategy; sometimes aim the path at the caller's real ids."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, aim=st.booleans())
    def probe(case, aim):
        if aim and case.path_parameters:
            for name in case.path_parameters:
                if name in real_ids:
                    case.path_parameters[name] = real_ids[name]
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        statuses.add(response.status_code)
        where = f"{case.method} {case.formatted_path} body={case.body!r}"
        assert response.status_code < 500, (where, response.text[:500])
        if response.status_code >= 400 and case.formatted_path.startswith("/api/"):
            body = response.json()
            assert set(body) == {"error"}, (where, body)
            assert body["error"]["code"] and body["error"]["message"], (where, body)

    probe()


def test_fuzz_the_whole_api_from_its_openapi_document(database_url, spotify_server):
    from web import create_app

    # Spotify is configured (against the loopback fake), as in service.
    app = create_app(spotify_app_config(database_url, spotify_server))
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
        client = app.test_client()
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        answered: dict[str, set[int]] = {}
        # Deleting the account last, so the other operations keep a live caller.
        operations.sort(key=lambda op: (op.method.upper() == "DELETE" and op.path.endswith("/me")))
        for operation in operations:
            caller = ApiUser(client, f"fuzz{len(answered)}")
            session = caller.new_session()
            memory = caller.post("/api/v1/memories", json={"title": "a memory"}).get_json()
            real_ids = {"session_id": session["id"], "memory_id": memory["id"]}
            label = f"{operation.method.upper()} {operation.path}"
            statuses = answered.setdefault(label, set())
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz_one(operation.as_strategy(generation_mode=mode), caller.token,
                             real_ids, statuses)
                except Unsatisfiable:
                    # an operation without inputs has no invalid form; its valid one ran
                    assert mode == GenerationMode.NEGATIVE and statuses, label
        # invalid bodies were generated and refused as such, not only valid ones
        assert answered["POST /api/v1/sessions"] & {400, 422}
    finally:
        app.extensions["goodcry"].engine.dispose()
