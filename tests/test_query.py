"""`ablate query` and `ablate.open`: SQL over trials and per-query scores, on SQLite and PostgreSQL."""

import io
import json

import polars as pl
import pytest

from ablate.query import QueryError, open_database
from ablate.results import load_scores
from results_fixture import cli, pg_results, results_db  # noqa: F401

pytestmark = pytest.mark.slow

GROUPED = ("select dataset, arm, avg(value) as mean, count(*) as n from scores "
           "where metric = 'ndcg_at_10' group by dataset, arm order by dataset, arm")


def test_views_hold_every_trial_and_query(results_db):
    db = open_database(results_db.url)
    assert db.study_names == ["tiny@mini"]
    trials = db.trials.collect()
    assert trials.height == 4 and set(trials["state"]) == {"COMPLETE"}
    for column in ("study", "cell", "arm", "seed", "per_device_batch", "control_negatives_per_query",
                   "control_samples_per_update", "time_train_s", "time_eval_s", "setting_learning_rate",
                   "duration_s", "config_hash", "error"):
        assert column in trials.columns, column
    assert sorted(trials["per_device_batch"].to_list()) == [8, 8, 32, 32]

    scores = db.scores.collect()  # long: one row per trial x dataset x query x metric
    assert scores.height == 4 * (400 + 400) * 3
    assert set(scores["metric"]) == {"ndcg_at_10", "mrr_at_10", "recall_at_100"}
    expected = {"study", "trial_id", "arm", "seed", "per_device_batch", "dataset", "query_id", "metric", "value"}
    assert expected <= set(scores.columns)

    # The same numbers as the stored blobs, read the old way.
    stored = load_scores(db.storage.engine, trials["trial_id"].to_list())
    wide = db.scores_wide.collect().sort("trial_id", "dataset", "query_id")
    stored = stored.select("trial_id", "dataset", "query_id", "ndcg_at_10") \
        .with_columns(pl.col("trial_id").cast(pl.Int64)).sort("trial_id", "dataset", "query_id")
    assert wide.select(stored.columns).equals(stored)
    long_ndcg = scores.filter(pl.col("metric") == "ndcg_at_10").sort("trial_id", "dataset", "query_id")
    assert long_ndcg["value"].to_list() == stored["ndcg_at_10"].to_list()

    runs = db.runs.collect()
    assert runs.height == 8 and set(runs["n_queries"]) == {400}
    # mteb's own aggregate agrees with the mean of the stored per-query scores
    means = wide.group_by("trial_id", "dataset").agg(pl.col("ndcg_at_10").mean())
    joined = runs.join(means, on=["trial_id", "dataset"])
    assert (joined["mteb_ndcg_at_10"] - joined["ndcg_at_10"]).abs().max() < 1e-4

    rankings = db.rankings.filter(pl.col("rank") == 1).collect()
    assert rankings.height == 8 * 400 and rankings["doc_id"].null_count() == 0

    studies = db.studies
    assert studies.row(0, named=True)["complete"] == 4 and studies.row(0, named=True)["spec"] == "tiny"


def test_sql_from_python_matches_polars(results_db):
    db = open_database(results_db.url, study="tiny")  # a spec name unique in the database is enough
    got = db.sql(GROUPED)
    want = (db.scores.filter(pl.col("metric") == "ndcg_at_10").group_by("dataset", "arm")
            .agg(pl.col("value").mean().alias("mean"), pl.len().alias("n")).sort("dataset", "arm").collect())
    assert got["mean"].to_list() == pytest.approx(want["mean"].to_list(), abs=1e-12)
    assert got["n"].to_list() == [800] * 4
    lazy = db.sql("select * from trials where seed = 1", eager=False)
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().height == 2
    # trial-level facts joined to per-query scores in one statement
    joined = db.sql("select t.control_negatives_per_query as negatives, avg(s.value) as mean from scores s "
                    "join trials t on s.trial_id = t.trial_id where s.metric = 'recall_at_100' group by negatives "
                    "order by negatives")
    assert joined["negatives"].to_list() == [15, 63]


def test_cli_query_formats(results_db, tmp_path):
    db = open_database(results_db.url)
    want = db.sql(GROUPED)

    table = cli("query", GROUPED, "--storage", results_db.url)
    assert table.exit_code == 0, table.stderr
    assert "| dataset" in table.stdout and "per_device_batch=32" in table.stdout

    csv = cli("query", GROUPED, "--storage", results_db.url, "--format", "csv")
    assert csv.exit_code == 0
    assert pl.read_csv(io.StringIO(csv.stdout))["mean"].to_list() == pytest.approx(want["mean"].to_list())

    js = cli("query", GROUPED, "--storage", results_db.url, "--format", "json")
    assert [row["n"] for row in json.loads(js.stdout)] == [800] * 4

    out = tmp_path / "sub" / "r.parquet"
    pq = cli("query", GROUPED, "--storage", results_db.url, "--format", "parquet", "--out", str(out))
    assert pq.exit_code == 0, pq.stderr
    assert pl.read_parquet(out).equals(want)

    limited = cli("query", "select * from scores", "--storage", results_db.url, "--max-rows", "5")
    assert "(9600 rows; showing 5" in limited.stdout


@pytest.mark.parametrize("sql, expected", [
    ("select nope from trials", "unknown column"),
    ("selec * from trials", "SQL error"),
    ("select * from nowhere", "views: studies, trials"),
    ("select arm, avg(value) from scores group by nope", "nope"),
])
def test_cli_query_bad_sql_is_one_line_exit_2(results_db, tmp_path, sql, expected):
    out = tmp_path / "never.csv"
    result = cli("query", sql, "--storage", results_db.url, "--format", "csv", "--out", str(out))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_query_bad_input(results_db, tmp_path):
    unknown = cli("query", "select * from trials", "--storage", results_db.url, "--study", "nope")
    assert unknown.exit_code == 2 and "no study 'nope'" in unknown.stderr and "tiny@mini" in unknown.stderr
    missing = cli("query", "select * from trials", "--storage", f"sqlite:///{tmp_path / 'absent.db'}")
    assert missing.exit_code == 2 and "no such study database" in missing.stderr
    assert not (tmp_path / "absent.db").exists()
    binary = cli("query", "select * from trials", "--storage", results_db.url, "--format", "parquet")
    assert binary.exit_code == 2 and "--out" in binary.stderr
    with pytest.raises(QueryError, match="unknown view"):
        open_database(results_db.url).view("nope")


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://someone:hunter2-secret@localhost:1/nowhere",        # nothing listening
    "postgresql+psycopg2://someone:hunter2-secret@localhost:5432/nowhere",     # wrong password / no database
])
def test_unreachable_storage_never_shows_the_password(url):
    for args in (["query", "select * from trials"], ["status"], ["export", "tiny"], ["compare", "tiny", "0", "1"]):
        result = cli(*args, "--storage", url)
        assert result.exit_code == 2, (args, result.output)
        assert "hunter2" not in result.output and "hunter2" not in result.stderr
        assert result.stderr.startswith("error: cannot open storage postgresql+psycopg2://someone:***@localhost")
        assert result.stderr.count("\n") == 1


def test_postgres_views_match_sqlite(results_db, pg_results):
    lite = open_database(results_db.url)
    pg = open_database(pg_results)
    got, want = pg.sql(GROUPED), lite.sql(GROUPED)
    assert got.drop("mean").equals(want.drop("mean"))
    assert got["mean"].to_list() == pytest.approx(want["mean"].to_list(), abs=1e-12)
    assert pg.scores.collect().height == lite.scores.collect().height
    cols = ["number", "state", "arm", "seed", "per_device_batch", "control_optimizer_updates", "config_hash"]
    assert pg.trials.collect().select(cols).sort("number").equals(lite.trials.collect().select(cols).sort("number"))
    assert pg.rankings.collect().height == lite.rankings.collect().height


def test_postgres_cli_query_hides_password(pg_results):
    from sqlalchemy.engine import make_url

    password = make_url(pg_results).password
    assert password
    ok = cli("query", "select study, count(*) as n from scores group by study", "--storage", pg_results,
             "--format", "csv")
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.strip().splitlines() == ["study,n", "tiny@mini,9600"]
    bad = cli("query", "select nope from trials", "--storage", pg_results)
    assert bad.exit_code == 2 and "unknown column" in bad.stderr
    status = cli("status", "--storage", pg_results)
    assert status.exit_code == 0 and "4 complete" in status.stdout
    for result in (ok, bad, status):
        assert password not in result.output and password not in result.stderr
    wrong = make_url(pg_results).set(password="not-the-password-xyz").render_as_string(hide_password=False)
    denied = cli("query", "select 1", "--storage", wrong)
    assert denied.exit_code == 2 and "not-the-password-xyz" not in denied.stderr
