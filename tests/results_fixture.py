"""Fixtures for the results tests: one small real study per test session, on SQLite and on PostgreSQL.

Import the fixtures into a test module (``from results_fixture import results_db  # noqa: F401``). pytest
makes a separate session fixture per importing module, so the expensive work is memoised here at module
level: the study is trained and evaluated once per session however many modules use it.

PostgreSQL: ``$ABLATE_TEST_POSTGRES`` (default ``postgresql+psycopg2://ablate:ablate-test@localhost:5432/ablate_test``)
names a role that may create databases; each session creates its own database, copies the study into it
and drops it at exit. If the server is not reachable and ``.ci/postgres`` can start it (root), it is run.
Without a server the PostgreSQL tests fail with a message saying so, unless ``ABLATE_SKIP_POSTGRES=1``.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, TINY_SPEC

DEFAULT_PG = "postgresql+psycopg2://ablate:ablate-test@localhost:5432/ablate_test"
_MEMO: dict[str, object] = {}


@dataclass(frozen=True)
class ResultsStudy:
    url: str           # sqlite:///... of the database holding the study
    study: str         # "tiny@mini"
    spec_path: Path
    profile: object    # the MiniProfile it ran with (its world has the queries and qrels)


def build_results_study(base: Path, profile) -> ResultsStudy:
    """2 arms x 2 seeds on factoid and counter, through the real scheduler, trainer and mteb evaluation."""
    if "study" not in _MEMO:
        from ablate.scheduler import run_study
        from ablate.spec import find_spec
        from ablate.storage import open_storage

        base.mkdir(parents=True, exist_ok=True)
        spec_path = base / "tiny.toml"
        spec_path.write_text(TINY_SPEC.format(name="tiny", datasets='"factoid", "counter"'))
        url = f"sqlite:///{base / 'results.db'}"
        summary = run_study(find_spec(str(spec_path)), profile, open_storage(url))
        assert summary.ran == 4 and not summary.failed, summary
        _MEMO["study"] = ResultsStudy(url=url, study="tiny@mini", spec_path=spec_path, profile=profile)
    return _MEMO["study"]


def copy_study_with_scores(from_url: str, to_url: str, study: str) -> None:
    """Copy an ablate study (Optuna's rows and ablate_scores) between storages; trial ids are remapped."""
    import optuna
    from sqlalchemy import insert, select

    from ablate.results import scores_table
    from ablate.storage import open_storage

    source, target = open_storage(from_url, create=False), open_storage(to_url)
    optuna.copy_study(from_study_name=study, from_storage=source, to_storage=target)
    old = {t._trial_id: t.number for t in optuna.load_study(study_name=study, storage=source).get_trials()}
    new = {t.number: t._trial_id for t in optuna.load_study(study_name=study, storage=target).get_trials()}
    with source.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(scores_table))]
    rows = [{**r, "trial_id": new[old[r["trial_id"]]]} for r in rows if r["trial_id"] in old]
    with target.engine.begin() as conn:
        conn.execute(insert(scores_table), rows)
    target.engine.dispose()
    source.engine.dispose()


def _postgres_admin_url() -> str:
    return os.environ.get("ABLATE_TEST_POSTGRES", DEFAULT_PG)


def _connect(url: str):
    from sqlalchemy import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    engine.connect().close()
    return engine


def postgres_database() -> str:
    """A fresh, empty PostgreSQL database for this session (dropped at exit); fails clearly without a server."""
    if "pg" in _MEMO:
        return _MEMO["pg"]
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from ablate.storage import redact

    admin_url = _postgres_admin_url()
    try:
        admin = _connect(admin_url)
    except Exception as first:
        script = REPO / ".ci" / "postgres"
        if os.geteuid() == 0 and script.exists():
            subprocess.run([str(script)], check=False, capture_output=True, timeout=120)
        try:
            admin = _connect(admin_url)
        except Exception:
            message = (f"PostgreSQL at {redact(admin_url)} is not reachable ({str(first).splitlines()[0][:200]}); "
                       "start it with .ci/postgres (as root), point ABLATE_TEST_POSTGRES at a role that may "
                       "create databases, or set ABLATE_SKIP_POSTGRES=1 to skip the PostgreSQL tests")
            if os.environ.get("ABLATE_SKIP_POSTGRES") == "1":
                pytest.skip(message)
            pytest.fail(message, pytrace=False)
    name = f"ablate_q_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))

    def drop():  # WITH (FORCE) closes connections the tests left open
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()

    atexit.register(drop)
    _MEMO["pg"] = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return _MEMO["pg"]


@pytest.fixture(scope="session")
def results_db(tmp_path_factory, small_profile) -> ResultsStudy:
    return build_results_study(tmp_path_factory.getbasetemp() / "results-study", small_profile)


@pytest.fixture(scope="session")
def pg_results(results_db) -> str:
    """URL of a PostgreSQL database holding a copy of ``results_db``'s study (with password)."""
    if "pg_study" not in _MEMO:
        url = postgres_database()
        copy_study_with_scores(results_db.url, url, results_db.study)
        _MEMO["pg_study"] = url
    return _MEMO["pg_study"]


def cli(*args: str, env: dict | None = None):
    """Run ``ablate ARGS`` in-process; the results commands are registered if cli.py does not yet do it."""
    from click.testing import CliRunner

    from ablate.cli import main
    from ablate.cli_results import register

    if "query" not in main.commands:
        register(main)
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
