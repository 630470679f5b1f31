"""`ablate run` killed mid-training resumes from its checkpoint and stores the same scores as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import optuna
import polars as pl
import pytest

from ablate.results import load_scores
from ablate.storage import open_storage
from conftest import write_spec

pytestmark = pytest.mark.slow

SPEC = """
name = "resume"
question = "Does a resumed trial equal an uninterrupted one?"
seeds = [0]

[factors]
per_device_batch = [2, 8]

[fixed]
learning_rate = 8e-5

[datasets]
mini = ["factoid"]
"""


def _scores(db):
    url = f"sqlite:///{db}"
    trials = optuna.load_study(study_name="resume@mini", storage=url).get_trials()
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in trials)
    complete = {t._trial_id: t.user_attrs["cell"] for t in trials if t.state.name == "COMPLETE"}
    scores = load_scores(open_storage(url).engine, list(complete))
    return scores.with_columns(pl.col("trial_id").replace_strict(complete).alias("cell")).drop(
        "trial_id").sort("cell", "query_id")


def test_killed_run_resumes_mid_training_to_identical_scores(tmp_path, model_cache):
    spec = write_spec(tmp_path, "resume", SPEC)
    env = {**os.environ, "ABLATE_CACHE": str(model_cache)}
    common = ["--profile-option", "subset_examples=64", "--checkpoint-every", "3"]
    cli = [sys.executable, "-m", "ablate.cli", "run", str(spec), *common]

    plain = subprocess.run([*cli, "--storage", f"sqlite:///{tmp_path / 'plain.db'}", "--resume-dir",
                            str(tmp_path / "plain-resume"), "--checkpoints", str(tmp_path / "plain-models")],
                           env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-2000:]

    resume_dir = tmp_path / "resume"
    args = [*cli, "--storage", f"sqlite:///{tmp_path / 'killed.db'}", "--resume-dir", str(resume_dir),
            "--checkpoints", str(tmp_path / "models")]
    victim = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(resume_dir.rglob("checkpoint-3/trainer_state.json")):
        time.sleep(0.05)
    assert list(resume_dir.rglob("checkpoint-3/trainer_state.json")), "no checkpoint was written"
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming training from checkpoint-" in rerun.stderr
    assert "ran 2 trial(s)" in rerun.stdout  # the killed cell again, and the one never started
    killed = _scores(tmp_path / "killed.db")
    expected = _scores(tmp_path / "plain.db")
    assert killed.height == expected.height == 800
    assert killed.select("cell", "query_id", "ndcg_at_10", "mrr_at_10", "recall_at_100").equals(
        expected.select("cell", "query_id", "ndcg_at_10", "mrr_at_10", "recall_at_100"))
