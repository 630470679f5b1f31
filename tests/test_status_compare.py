"""`ablate status` (cells by state, last errors, ETA) and `ablate compare` (two trials, query by query)."""

import datetime as dt
import json
import re

import optuna
import polars as pl
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from ablate.compare import compare_trials
from ablate.query import open_database
from ablate.spec import parse_spec
from ablate.stats import paired
from ablate.status import study_status
from results_fixture import cli, copy_study_with_scores, results_db  # noqa: F401

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def _trial(number, state, cell, seconds=None, error=None, started=T0, failure=None):
    attrs = {"cell": json.dumps(cell, sort_keys=True), "arm": f"per_device_batch={cell['per_device_batch']}",
             "seed": cell["seed"]}
    if error:
        attrs["error"] = error
    if failure:
        attrs["failure"] = failure
    return FrozenTrial(
        number=number, trial_id=number, state=state, value=0.5 if state == TrialState.COMPLETE else None, values=None,
        datetime_start=None if state == TrialState.WAITING else started,
        datetime_complete=started + dt.timedelta(seconds=seconds) if seconds is not None else None,
        params=cell, distributions={"per_device_batch": CategoricalDistribution([8, 32]),
                                    "seed": CategoricalDistribution([0, 1, 2])},
        user_attrs=attrs, system_attrs={}, intermediate_values={})


@pytest.fixture()
def busy_study(tmp_path):
    """A study mid-run: 2 cells complete (100 s, 300 s), 1 running for 50 s, 1 failed, 2 waiting."""
    spec = parse_spec({"name": "busy", "question": "q?", "seeds": [0, 1, 2], "factors": {"per_device_batch": [8, 32]},
                       "datasets": {"mini": ["factoid"]}})
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    study = optuna.create_study(study_name="busy@mini", storage=url, direction="maximize")
    study.set_user_attr("spec", json.loads(spec.to_json()))
    study.set_user_attr("profile", {"profile": "mini"})
    study.set_user_attr("metric", "ndcg_at_10")
    for trial in (
        _trial(0, TrialState.COMPLETE, {"per_device_batch": 8, "seed": 0}, seconds=100),
        _trial(1, TrialState.FAIL, {"per_device_batch": 8, "seed": 1}, seconds=5, error="OSError: disk full"),
        _trial(2, TrialState.COMPLETE, {"per_device_batch": 8, "seed": 1}, seconds=300),
        _trial(3, TrialState.FAIL, {"per_device_batch": 32, "seed": 0}, seconds=5, error="RuntimeError: first"),
        _trial(4, TrialState.FAIL, {"per_device_batch": 32, "seed": 0}, seconds=5, error="RuntimeError: boom",
               failure="config"),
        _trial(5, TrialState.RUNNING, {"per_device_batch": 32, "seed": 1}, started=T0 + dt.timedelta(seconds=1000)),
        _trial(6, TrialState.WAITING, {"per_device_batch": 8, "seed": 2}),
    ):  # cell (32, seed 2) was never enqueued: it waits for the next `ablate run`
        study.add_trial(trial)
    return url


def test_status_counts_errors_and_eta(busy_study):
    status = study_status(open_database(busy_study), "busy", now=T0 + dt.timedelta(seconds=1050))
    assert (status.cells, status.complete, status.running, status.failed, status.waiting) == (6, 2, 1, 1, 2)
    assert status.mean_trial_s == pytest.approx(200)
    # 2 waiting x 200 s + the running trial's remaining 150 s, on the one worker running now
    assert status.eta_s == pytest.approx(550)
    # the last error only, with the failure kind a newer scheduler records
    assert status.errors == [("per_device_batch=32, seed=0", 4, "[config] RuntimeError: boom")]
    trials = open_database(busy_study).trials.collect()
    assert trials.filter(pl.col("number") == 4)["failure"].to_list() == ["config"]


@pytest.mark.slow
def test_status_cli(busy_study, results_db):
    busy = cli("status", "--storage", busy_study)
    assert busy.exit_code == 0, busy.stderr
    lines = busy.stdout.strip().splitlines()
    assert lines[0].startswith("busy@mini: 6 cells: 2 complete, 1 running, 1 failed, 2 waiting; mean trial 3m20s; ETA ")
    assert lines[1] == "  failed: per_device_batch=32, seed=0 (trial 4): [config] RuntimeError: boom"
    done = cli("status", "tiny", "--storage", results_db.url)
    assert done.exit_code == 0
    assert re.match(r"tiny@mini: 4 cells: 4 complete, 0 running, 0 failed, 0 waiting; mean trial \d+s; "
                    r"nothing left to run$", done.stdout.strip())
    unknown = cli("status", "nope", "--storage", results_db.url)
    assert unknown.exit_code == 2 and "no study 'nope'" in unknown.stderr and unknown.stdout == ""


@pytest.mark.slow
def test_compare_matches_paired_test(results_db):
    db = open_database(results_db.url)
    comparison = compare_trials(db, "tiny", 0, 2, top=3)
    assert [d.dataset for d in comparison.datasets] == ["counter", "factoid"]
    wide = db.scores_wide.collect()
    for d in comparison.datasets:
        a = wide.filter((pl.col("number") == 0) & (pl.col("dataset") == d.dataset)).sort("query_id")["ndcg_at_10"]
        b = wide.filter((pl.col("number") == 2) & (pl.col("dataset") == d.dataset)).sort("query_id")["ndcg_at_10"]
        want = paired(a.to_numpy(), b.to_numpy())
        assert d.result.estimate == pytest.approx(want.estimate) and d.result.p_value == pytest.approx(want.p_value)
        assert (d.result.wins, d.result.ties, d.result.losses) == (want.wins, want.ties, want.losses)
        assert d.result.wins + d.result.ties + d.result.losses == 400
        diffs = (b - a).abs().sort(descending=True).head(3).to_list()
        assert d.largest["diff"].abs().to_list() == pytest.approx(diffs)
        queries = results_db.profile.world.datasets[d.dataset].queries
        assert d.largest["text"].to_list() == [queries[q] for q in d.largest["query_id"]]
        assert d.text_note is None


@pytest.mark.slow
def test_compare_cli(results_db, tmp_path):
    result = cli("compare", "tiny", "0", "2", "--dataset", "factoid", "--storage", results_db.url, "--top", "2")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "trial 2 (per_device_batch=32, seed=0) vs trial 0 (per_device_batch=8, seed=0)" in out
    assert "factoid (400 queries)" in out and "paired t p=" in out and "wins/ties/losses" in out
    assert "counter" not in out
    assert len(re.findall(r"^\s+[+-]\d+\.\d\d  q\S+ +A ", out, flags=re.M)) == 2

    for args, message in ((["tiny", "0", "42"], "no trial 42"),
                          (["tiny", "0", "2", "--dataset", "nope"], "no dataset 'nope'"),
                          (["tiny", "0", "2", "--metric", "nope"], "unknown metric 'nope'"),
                          (["nope", "0", "2"], "no study 'nope'")):
        bad = cli("compare", *args, "--storage", results_db.url)
        assert bad.exit_code == 2 and message in bad.stderr, bad.stderr
        assert bad.stderr.count("\n") == 1 and bad.stdout == ""

    # A study whose queries cannot be rebuilt here still compares, and says the text is missing.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    copy_study_with_scores(results_db.url, other, "tiny@mini")
    optuna.load_study(study_name="tiny@mini", storage=other).set_user_attr("profile", {"profile": "paper"})
    textless = cli("compare", "tiny", "1", "3", "--storage", other, "--dataset", "counter")
    assert textless.exit_code == 0, textless.stderr
    assert "query text unavailable for counter" in textless.stdout
