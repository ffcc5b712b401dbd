"""Fixtures: the real app on a real database, prepared once and copied per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from recommender.bootstrap import prepare_store
from recommender.cry_sessions import Recommender
from recommender.store.db import make_engine, make_session_factory
from tests.fakes.lastfm_server import lastfm_server  # noqa: F401  (a fixture)
from tests.fakes.spotify_server import spotify_server  # noqa: F401  (a fixture)

PASSWORD = "correct horse battery"


TEST_DATABASE_URL = os.environ.get("GOODCRY_TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


class PostgresDatabases:
    """Throwaway databases on the test PostgreSQL server, each cloned from a template."""

    def __init__(self, server_url: str):
        self.server = make_url(server_url)
        self.admin = create_engine(self.server, isolation_level="AUTOCOMMIT",
                                   poolclass=NullPool)
        self.prefix = f"goodcry_test_{os.getpid()}"
        self.count = 0

    def url(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        self.count += 1
        name = f"{self.prefix}_{self.count}"
        clause = f" TEMPLATE {template}" if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres() -> PostgresDatabases | None:
    if not ON_POSTGRES:
        yield None
        return
    databases = PostgresDatabases(TEST_DATABASE_URL)
    yield databases
    with databases.admin.connect() as conn:
        left = conn.scalars(text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                            {"p": databases.prefix + "%"}).all()
    for name in left:
        databases.drop(name)
    databases.admin.dispose()


def _prepare(url: str) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    prepare_store(engine, factory)
    with factory() as db:
        Recommender().model(db)  # trains and stores the content model once
    engine.dispose()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory, postgres) -> Path | str:
    """A migrated database with the bundled catalogue and the content model.

    SQLite (the default): a file, copied per test. PostgreSQL (``GOODCRY_TEST_DATABASE_URL``
    set to a ``postgresql+psycopg://`` URL): a template database, cloned per test.
    """
    if postgres is not None:
        name = postgres.create()
        _prepare(postgres.url(name))
        return name
    path = tmp_path_factory.mktemp("template") / "goodcry.sqlite"
    _prepare(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(template_db, tmp_path, postgres) -> str:
    """A database of its own for this test, ready to serve (migrated, catalogue, model)."""
    if postgres is not None:
        name = postgres.create(template=template_db)
        yield postgres.url(name)
        postgres.drop(name)
        return
    target = tmp_path / "goodcry.sqlite"
    shutil.copy(template_db, target)
    yield f"sqlite:///{target}"


@pytest.fixture
def empty_database_url(tmp_path, postgres) -> str:
    """An empty database of the suite's flavour, for tests of a first start."""
    if postgres is not None:
        name = postgres.create()
        yield postgres.url(name)
        postgres.drop(name)
        return
    yield f"sqlite:///{tmp_path / 'fresh.sqlite'}"


@pytest.fixture
def db(database_url):
    """A database session on this test's own database."""
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def app(database_url, tmp_path):
    from web import create_app

    os.environ.pop("GOODCRY_DATABASE_URL", None)
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-not-for-production",
    })
    yield app
    app.extensions["goodcry"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


class ApiUser:
    """A registered person talking to the API through the test client."""

    def __init__(self, client, username: str):
        self.client = client
        self.username = username
        answer = client.post("/api/v1/auth/register",
                             json={"username": username, "password": PASSWORD})
        assert answer.status_code == 201, answer.get_json()
        self.user_id = answer.get_json()["user_id"]
        self.token = answer.get_json()["token"]

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path, **kw):
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path, **kw):
        return self.client.post(path, headers=self.headers, **kw)

    def patch(self, path, **kw):
        return self.client.patch(path, headers=self.headers, **kw)

    def delete(self, path, **kw):
        return self.client.delete(path, headers=self.headers, **kw)

    def new_session(self, **body) -> dict:
        body = {"moods": ["grief"], "minutes": 45, **body}
        answer = self.post("/api/v1/sessions", json=body)
        assert answer.status_code == 201, answer.get_json()
        return answer.get_json()


@pytest.fixture
def alice(client) -> ApiUser:
    return ApiUser(client, "alice")


@pytest.fixture
def bob(client) -> ApiUser:
    return ApiUser(client, "bob")


def assert_error(answer, status: int, code: str | None = None, mentions: str | None = None):
    """The contract's error envelope, with the expected status (and code, and words)."""
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    body = answer.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    if mentions:
        assert mentions in body["error"]["message"], body
    return body["error"]
