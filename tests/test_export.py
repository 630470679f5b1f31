"""`ablate export`: TREC runs that ranx re-scores to the stored per-query numbers, per-query tables, mteb JSON."""

import json

import polars as pl
import pytest

from ablate.export import read_run
from ablate.query import open_database
from results_fixture import cli, results_db  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(results_db, tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    with_header = cli("export", "tiny", "--storage", results_db.url, "--out", str(base / "full"))
    assert with_header.exit_code == 0, with_header.stderr
    plain = cli("export", "tiny@mini", "--storage", results_db.url, "--out", str(base / "plain"), "--no-header",
                "--format", "trec")
    assert plain.exit_code == 0, plain.stderr
    return base, with_header.stdout


def _qrels(profile, dataset):
    import ranx

    return ranx.Qrels.from_dict({q: dict(rels) for q, rels in profile.world.datasets[dataset].qrels.items()})


def test_export_layout(exported):
    base, stdout = exported
    full = base / "full"
    runs = sorted(p.name for p in (full / "runs").iterdir())
    assert runs == [f"trial-{n}.{d}.trec" for n in range(4) for d in ("counter", "factoid")]
    assert (full / "per_query.parquet").is_file() and (full / "per_query.csv").is_file()
    manifest = json.loads((full / "manifest.json").read_text())
    assert manifest["study"] == "tiny@mini" and manifest["trials"] == [0, 1, 2, 3]
    assert "wrote" in stdout and "--no-header" in stdout
    assert sorted(p.name for p in (base / "plain").iterdir()) == ["manifest.json", "runs"]


def test_run_files_reproduce_stored_metrics_with_ranx(exported, results_db):
    import ranx

    db = open_database(results_db.url)
    stored = db.scores_wide.collect()
    base, _ = exported
    for number in range(4):
        for dataset in ("factoid", "counter"):
            path = base / "plain" / "runs" / f"trial-{number}.{dataset}.trec"
            run = ranx.Run.from_file(str(path), kind="trec")
            qrels = _qrels(results_db.profile, dataset)
            mine = stored.filter((pl.col("number") == number) & (pl.col("dataset") == dataset))
            for metric, column in (("ndcg@10", "ndcg_at_10"), ("recall@100", "recall_at_100")):
                values = ranx.evaluate(qrels, run, metric, return_mean=False, make_comparable=True)
                got = dict(zip(qrels.keys(), values))
                for query_id, value in zip(mine["query_id"], mine[column]):
                    assert got[query_id] == pytest.approx(value, abs=1e-6), (path.name, metric, query_id)
            # the header version holds the same ranking
            assert read_run(base / "full" / "runs" / path.name) == read_run(path)


def test_run_file_order_and_header(exported, results_db):
    base, _ = exported
    text = (base / "full" / "runs" / "trial-2.factoid.trec").read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    body = [line.split() for line in text.splitlines() if not line.startswith("#")]
    fields = dict(line[2:].split(": ", 1) for line in header)
    for key in ("study", "cell", "seed", "config_hash", "dataset_revision", "versions_at_trial", "versions_at_export",
                "settings", "profile"):
        assert key in fields, key
    assert fields["study"] == "tiny@mini" and fields["dataset_revision"].startswith("factoid-")
    assert fields["cell"] == "per_device_batch=32, seed=0"
    assert "ties by doc id descending" in fields["format"]
    assert all(len(row) == 6 and row[1] == "Q0" and row[5] == "tiny@mini.trial2" for row in body)
    # ranks 1..k per query in (score desc, doc id desc) order; the same lists as stored
    frame = pl.DataFrame(body, schema=["qid", "q0", "doc", "rank", "score", "tag"], orient="row").with_columns(
        pl.col("rank").cast(pl.Int64), pl.col("score").cast(pl.Float64))
    for qid, group in frame.group_by("qid"):
        assert group["rank"].to_list() == list(range(1, group.height + 1))
        keys = list(zip(group["score"], group["doc"]))
        assert keys == sorted(keys, reverse=True)
    db = open_database(results_db.url)
    stored = db.rankings.filter((pl.col("number") == 2) & (pl.col("dataset") == "factoid")).collect()
    assert frame.height == stored.height == 400 * 100
    lookup = {(q, r): d for q, r, d in stored.select("query_id", "rank", "doc_id").iter_rows()}
    assert all(lookup[(q, r)] == d for q, r, d in frame.select("qid", "rank", "doc").iter_rows())


def test_per_query_tables_and_mteb_json(exported, results_db):
    import mteb

    base, _ = exported
    db = open_database(results_db.url)
    want = db.scores_wide.collect().sort("number", "dataset", "query_id")
    parquet = pl.read_parquet(base / "full" / "per_query.parquet")
    assert parquet.select(want.columns).equals(want)
    csv = pl.read_csv(base / "full" / "per_query.csv")
    assert csv["ndcg_at_10"].to_list() == pytest.approx(want["ndcg_at_10"].to_list(), abs=1e-12)
    results = sorted((base / "full" / "mteb").rglob("ablate-*.json"))
    assert len(results) == 8
    runs = db.runs.collect()
    for path in results:
        loaded = mteb.TaskResult.from_disk(path)
        meta = json.loads((path.parent / "model_meta.json").read_text())
        row = runs.filter((pl.col("number") == meta["ablate"]["trial"])
                          & (pl.col("dataset") == loaded.task_name.removeprefix("ablate-"))).row(0, named=True)
        assert loaded.get_score() == pytest.approx(row["mteb_ndcg_at_10"])
        assert loaded.dataset_revision == row["revision"]


def test_export_subset_and_bad_input(results_db, tmp_path):
    ok = cli("export", "tiny", "--storage", results_db.url, "--out", str(tmp_path / "one"), "--trial", "1",
             "--dataset", "counter", "--format", "trec", "--format", "csv")
    assert ok.exit_code == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "one" / "runs").iterdir()) == ["trial-1.counter.trec"]
    assert set(pl.read_csv(tmp_path / "one" / "per_query.csv")["dataset"]) == {"counter"}
    for args, message in ((["nope"], "no study 'nope'"),
                          (["tiny", "--trial", "42"], "no trial 42"),
                          (["tiny", "--dataset", "nope"], "no dataset 'nope'")):
        out = tmp_path / "never"
        result = cli("export", *args, "--storage", results_db.url, "--out", str(out))
        assert result.exit_code == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]  # no scratch directories left behind
