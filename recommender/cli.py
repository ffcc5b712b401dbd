"""The ``goodcry`` command line: serve, catalogue import and build, train."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def _store():
    """Engine and session factory for the configured database (same rules as the service)."""
    from recommender.store.db import make_engine, make_session_factory

    url = os.environ.get("GOODCRY_DATABASE_URL")
    if not url:
        from web import create_app  # the instance folder is the app's to decide

        app = create_app({"PREPARE_STORE": False})
        url = app.config["DATABASE_URL"]
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def _prepare_matrix(factory) -> None:
    """Build a large catalogue's item matrix artefact before any worker needs it, and read
    its sets of tags into memory pairing's cache, which the workers then start with."""
    from recommender.matrix_cache import prepare_artefact
    from recommender.prompts import prefill_tag_readings
    from recommender.vocabulary import default_vocabulary

    vocabulary = default_vocabulary()
    with factory() as db:
        matrix = prepare_artefact(db, vocabulary)
        if matrix is not None:
            click.echo("goodcry: item matrix ready", err=True)
            read = prefill_tag_readings(matrix.records.column("tags"), vocabulary)
            click.echo(f"goodcry: {read} sets of tags read for memory pairing", err=True)


@click.group()
def main() -> None:
    """goodcry: cry sessions of sad songs and films, ranked for you."""


def gunicorn_settings(host: str, port: int, workers: int, threads: int) -> dict:
    """The gunicorn settings `goodcry serve` runs with."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        # gunicorn's gthread worker, closing connections without holding its loop and
        # leaving new connections to the first-choice worker while it is free
        # (web/worker.py).
        "worker_class": "web.worker.ThreadWorker",
        "threads": threads,
        # A worker takes a connection only while it has a thread free for it and closes it
        # after the answer. Kept alive, a client's connection stays with the worker that
        # first accepted it, so a few busy clients could all queue on one worker while the
        # other sat idle (benchmark at 100k items, four clients: p95 32 ms with kept-alive
        # connections, 23 ms without).
        "worker_connections": threads,
        "keepalive": 0,
        "graceful_timeout": 10,
        "timeout": 60,
        "accesslog": None,
    }


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Threads per worker (gunicorn's gthread workers); a worker accepts at most "
                   "this many connections at once.")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Run the web service on gunicorn (migrating and loading the catalogue first)."""
    from gunicorn.app.base import BaseApplication

    from web.security import production_start_problem

    problem = production_start_problem()
    if problem:
        raise click.ClickException(problem)

    from recommender.bootstrap import prepare_store

    engine, factory = _store()
    count = prepare_store(engine, factory)
    _prepare_matrix(factory)
    engine.dispose()
    # The compiled functions (memory pairing's, retrieval's, the taste's, the arc's) are
    # loaded before the workers fork, so they start with them instead of each loading them
    # (prepare_store's imports load them already; named here so that it stays so).
    from recommender import (  # noqa: F401
        arc_kernel,
        pairing_kernel,
        retrieval_kernel,
        taste_kernel,
    )
    click.echo(f"goodcry: database ready, {count} catalogue items", err=True)

    class GoodcryServer(BaseApplication):
        def load_config(self):
            for name, value in gunicorn_settings(host, port, workers, threads).items():
                self.cfg.set(name, value)

        def load(self):
            from web import create_app

            return create_app({"PREPARE_STORE": False})

    GoodcryServer().run()


@main.group()
def catalog() -> None:
    """The catalogue of songs and films."""


@catalog.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--progress/--no-progress", default=True, show_default=True)
def catalog_import(file: Path, progress: bool) -> None:
    """Add or update items from a CSV in the contract's format."""
    from recommender.bootstrap import prepare_store
    from recommender.catalog.importer import CatalogFileError, import_csv

    engine, factory = _store()
    prepare_store(engine, factory)
    with factory() as db:
        try:
            report = import_csv(db, file, progress=progress)
        except CatalogFileError as exc:
            raise click.ClickException(f"{file}: {exc}") from None
        if report.changed:
            _prepare_matrix(factory)
    for problem in report.errors:
        click.echo(f"{file}:{problem.line}: skipped: {problem.message}", err=True)
    for problem in report.warnings:
        click.echo(f"{file}:{problem.line}: warning: {problem.message}", err=True)
    click.echo(f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
               f"skipped {len(report.errors)}")


def _print_merge_report(report) -> None:
    for problem in report.errors:
        click.echo(f"{problem.file}:{problem.line}: skipped: {problem.message}", err=True)
    for problem in report.warnings:
        click.echo(f"{problem.file}:{problem.line}: warning: {problem.message}", err=True)
    click.echo(report.summary())


@catalog.command("import-muse")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--progress/--no-progress", default=True, show_default=True)
def catalog_import_muse(file: Path, progress: bool) -> None:
    """Add the sad (and uplifting) songs of a MuSe dataset CSV you downloaded."""
    from recommender.bootstrap import prepare_store
    from recommender.catalog.muse import DatasetFileError, import_muse

    engine, factory = _store()
    prepare_store(engine, factory)
    with factory() as db:
        try:
            report = import_muse(db, file, progress=progress)
        except DatasetFileError as exc:
            raise click.ClickException(str(exc)) from None
    _print_merge_report(report)


@catalog.command("import-movielens")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--threshold", default=0.7, show_default=True, type=click.FloatRange(0.01, 1.0),
              help="Genome relevance a tag needs to count.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def catalog_import_movielens(directory: Path, threshold: float, progress: bool) -> None:
    """Add the films a MovieLens tag genome (movies.csv, genome-*.csv) calls sad."""
    from recommender.bootstrap import prepare_store
    from recommender.catalog.movielens import import_movielens
    from recommender.catalog.muse import DatasetFileError

    engine, factory = _store()
    prepare_store(engine, factory)
    with factory() as db:
        try:
            report = import_movielens(db, directory, threshold=threshold, progress=progress)
        except DatasetFileError as exc:
            raise click.ClickException(str(exc)) from None
    _print_merge_report(report)


@catalog.command("link-spotify")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Look up at most this many songs in this run.")
def catalog_link_spotify(limit: int | None) -> None:
    """Find Spotify URIs, ISRCs, durations and years for catalogue songs (one search each).

    Needs GOODCRY_SPOTIFY_CLIENT_ID and GOODCRY_SPOTIFY_CLIENT_SECRET. A rate limit stops the
    run and says when to run again; the next run resumes where this one stopped.
    """
    from recommender.bootstrap import prepare_store
    from recommender.catalog.spotify_link import link_catalogue, resume_at
    from recommender.services.spotify import (
        SpotifyClient,
        SpotifyConfig,
        SpotifyError,
        client_credentials_token,
    )
    from recommender.store.models import utcnow

    client_id = os.environ.get("GOODCRY_SPOTIFY_CLIENT_ID", "")
    secret = os.environ.get("GOODCRY_SPOTIFY_CLIENT_SECRET", "")
    if not client_id or not secret:
        raise click.ClickException(
            "set GOODCRY_SPOTIFY_CLIENT_ID and GOODCRY_SPOTIFY_CLIENT_SECRET to search Spotify")
    config = SpotifyConfig(
        client_id=client_id, redirect_uri="",
        api_url=os.environ.get("GOODCRY_SPOTIFY_API_URL") or "https://api.spotify.com/v1/",
        accounts_url=(os.environ.get("GOODCRY_SPOTIFY_ACCOUNTS_URL")
                      or "https://accounts.spotify.com/"),
    )
    engine, factory = _store()
    prepare_store(engine, factory)
    with factory() as db:
        scheduled = resume_at(db)
        if scheduled is not None and scheduled > utcnow():
            click.echo(f"Spotify asked us to wait: run again after "
                       f"{scheduled.isoformat(timespec='seconds')}", err=True)
            sys.exit(75)

        def new_client() -> SpotifyClient:
            return SpotifyClient(config, client_credentials_token(config, secret).access_token)

        try:
            report = link_catalogue(db, new_client(), new_client=new_client, limit=limit)
        except SpotifyError as exc:
            raise click.ClickException(f"Spotify: {exc}") from None
    click.echo(report.summary())
    if report.status in ("paused", "waiting"):
        sys.exit(75)


@catalog.command("enrich-lastfm")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Send at most this many requests to Last.fm in this run.")
def catalog_enrich_lastfm(limit: int | None) -> None:
    """Add mood tags from Last.fm top tags (needs GOODCRY_LASTFM_API_KEY)."""
    from recommender.bootstrap import prepare_store
    from recommender.catalog.lastfm_tags import enrich_catalog
    from recommender.services.lastfm import LastfmClient, LastfmError, lastfm_config

    config = lastfm_config()
    if config is None:
        raise click.ClickException("set GOODCRY_LASTFM_API_KEY to ask Last.fm for tags")
    engine, factory = _store()
    prepare_store(engine, factory)
    with factory() as db, LastfmClient(config) as client:
        try:
            report = enrich_catalog(db, client, limit=limit)
        except LastfmError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    if report.status in ("paused", "waiting"):
        sys.exit(75)


@catalog.command("build")
def catalog_build() -> None:
    """Rebuild data/catalog.csv from the editorial sources and annotations."""
    from recommender.catalog.build import build_catalog
    from recommender.paths import CATALOG_CSV, DATA_DIR

    report = build_catalog(DATA_DIR / "editorial", CATALOG_CSV)
    click.echo(str(report))


@main.command()
def train() -> None:
    """Refit the ranking model on all stored feedback and serve it."""
    from recommender import learning
    from recommender.bootstrap import prepare_store
    from recommender.cry_sessions import Recommender

    engine, factory = _store()
    prepare_store(engine, factory)
    with factory() as db:
        matrix = Recommender().matrix(db)
        ranker, sidecar = learning.fit_ranker(db, matrix, Recommender().vocabulary)
        version = learning.save_version(db, ranker, sidecar)
    click.echo(f"trained {version} on {sidecar['n_feedback_reactions']} reactions and "
               f"{sidecar['n_catalogue_examples']} catalogue examples; now serving it")


@main.group()
def exports() -> None:
    """Exports of sessions to other services."""


@exports.command("resume")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
def exports_resume(limit: int) -> None:
    """Resume Spotify exports that are due (a 429's Retry-After passed, or a partial one)."""
    from recommender.spotify_export import resume_due_exports
    from web import create_app
    from web.api.spotify import export_settings

    app = create_app({"PREPARE_STORE": False})
    with app.app_context():
        if not app.config.get("SPOTIFY_CLIENT_ID"):
            raise click.ClickException("Spotify is not configured: set GOODCRY_SPOTIFY_CLIENT_ID")
        settings = export_settings()
        with app.extensions["goodcry"].session_factory() as db:
            results = resume_due_exports(db, settings, limit=limit)
    for job, outcome in results:
        if isinstance(outcome, str):
            click.echo(f"{job.id}: not resumed: {outcome}")
        else:
            wait = f", retry after {outcome.retry_after_s}s" if outcome.retry_after_s else ""
            click.echo(f"{job.id}: {outcome.status}, {outcome.added} added, "
                       f"{len(outcome.unmatched)} unmatched{wait}")
    click.echo(f"resumed {len(results)} export(s)")


@main.command()
@click.option("--people", default=20, show_default=True, type=click.IntRange(1, 500),
              help="Simulated people.")
@click.option("--sessions", default=20, show_default=True, type=click.IntRange(2, 200),
              help="Sessions per simulated person.")
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--retrain-every", default=5, show_default=True, type=click.IntRange(0, 200),
              help="Rounds between refits of the shared model (0: never).")
@click.option("--out", "out_dir", default="evaluation", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the plot (PNG), the tables (CSV) and the text report.")
def evaluate(people: int, sessions: int, seed: int, retrain_every: int, out_dir: Path) -> None:
    """Simulation benchmark (goodcry against random, popularity, content match and river's
    LinUCB bandit, on the same simulated people) and offline replay; prints the targets."""
    import tempfile
    import warnings

    from recommender.evaluation.report import evaluate as run
    from recommender.evaluation.simulation import SimulationConfig

    config = SimulationConfig(people=people, sessions=sessions, seed=seed,
                              retrain_every=retrain_every)
    with tempfile.TemporaryDirectory(prefix="goodcry-evaluate-") as workdir, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluation = run(config, out_dir, Path(workdir))
    click.echo(evaluation.text())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
