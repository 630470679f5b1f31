import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate.scheduler import StudyMismatch, claim_next, enqueue_missing, open_study, run_study
from ablate.spec import load_spec
from ablate.storage import open_storage
from conftest import TINY_SPEC, write_spec
from _worker import _StubProfile, recording_runner

WORKER = Path(__file__).parent / "_worker.py"


def _spec(tmp_path, seeds="[0, 1]"):
    text = TINY_SPEC.format(name="tiny", datasets='"factoid"').replace("seeds = [0, 1]", f"seeds = {seeds}")
    return load_spec(write_spec(tmp_path, "tiny", text))


def _cells_by_state(url, name="tiny@mini"):
    study = optuna.load_study(study_name=name, storage=url)
    return Counter((t.user_attrs["cell"], t.state.name) for t in study.get_trials())


def _starts(log: Path) -> Counter:
    return Counter(line.split(" ", 2)[2] for line in log.read_text().splitlines() if " start " in line)


def test_every_cell_runs_once_and_rerun_runs_nothing(tmp_path):
    spec = _spec(tmp_path)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    log = tmp_path / "log"
    summary = run_study(spec, _StubProfile(), open_storage(url), runner=recording_runner(str(log), 0))
    assert summary.ran == 4 and not summary.failed
    assert sorted(_starts(log).values()) == [1, 1, 1, 1]
    again = run_study(spec, _StubProfile(), open_storage(url), runner=recording_runner(str(log), 0))
    assert again.ran == 0 and again.already_complete == 4
    assert sum(_starts(log).values()) == 4


def test_failed_cell_is_retried_then_reported_and_rerun_on_request(tmp_path):
    spec = _spec(tmp_path)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    log = tmp_path / "log"
    good = recording_runner(str(log), 0)

    def flaky(spec_, cell, profile, progress):
        if cell.seed == 1 and cell.arm.as_dict()["per_device_batch"] == 32:
            raise RuntimeError("disk full")
        return good(spec_, cell, profile, progress)

    first = run_study(spec, _StubProfile(), open_storage(url), runner=flaky, max_retries=1)
    assert first.ran == 3 and first.attempts_failed == 2  # the first try and one retry
    assert first.failed == [("per_device_batch=32, seed=1", "RuntimeError: disk full")]
    study = optuna.load_study(study_name="tiny@mini", storage=url)
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 2 and {t.user_attrs["error"] for t in failed} == {"RuntimeError: disk full"}
    assert all("disk full" in t.user_attrs["traceback"] and t.user_attrs["failure"] == "error" for t in failed)
    again = run_study(spec, _StubProfile(), open_storage(url), runner=good, max_retries=1)
    assert again.ran == 0 and again.failed == first.failed  # given up: not retried until asked
    asked = run_study(spec, _StubProfile(), open_storage(url), runner=good, max_retries=1, retry_failed=True)
    assert asked.ran == 1 and not asked.failed
    complete = Counter(c for (c, s), n in _cells_by_state(url).items() if s == "COMPLETE" for _ in range(n))
    assert len(complete) == 4 and set(complete.values()) == {1}


def test_two_processes_on_one_database_never_run_a_cell_twice(tmp_path):
    spec_path = write_spec(tmp_path, "tiny", TINY_SPEC.format(name="tiny", datasets='"factoid"')
                           .replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4, 5]"))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    open_storage(url)  # created once, as `ablate run` does before workers start
    log = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [subprocess.Popen([sys.executable, str(WORKER), url, str(spec_path), str(log), "0.3"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [w.communicate(timeout=240) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    starts = _starts(log)
    assert len(starts) == 12 and set(starts.values()) == {1}, starts
    states = _cells_by_state(url)
    complete = [cell for (cell, state) in states.elements() if state == "COMPLETE"]
    assert len(complete) == 12 and len(set(complete)) == 12
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    assert len(pids) >= 2  # the work really was shared


def test_duplicate_enqueue_is_discarded_not_run(tmp_path):
    spec = _spec(tmp_path, seeds="[0]")
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    study = open_study(storage, spec, _StubProfile())
    assert enqueue_missing(study, spec) == 2
    # A second process that looked before the first enqueued adds the same cells again.
    for trial in list(study.get_trials(states=(TrialState.WAITING,))):
        study.enqueue_trial(trial.params or trial.system_attrs["fixed_params"], user_attrs=trial.user_attrs)
    claimed = []
    while (item := claim_next(study, spec)) is not None:
        trial, cell = item
        claimed.append(cell.key)
        study.tell(trial, 0.5)
    assert sorted(claimed) == sorted({c.key for c in spec.cells()})
    pruned = [t for t in study.get_trials() if t.state == TrialState.PRUNED]
    assert len(pruned) == 2 and all(t.user_attrs["discarded"].startswith("duplicate of trial") for t in pruned)


def test_killed_run_resumes_without_losing_or_doubling_a_cell(tmp_path):
    spec_path = write_spec(tmp_path, "tiny", TINY_SPEC.format(name="tiny", datasets='"factoid"'))
    url = f"sqlite:///{tmp_path / 'k.db'}"
    open_storage(url)
    log = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    victim = subprocess.Popen([sys.executable, str(WORKER), url, str(spec_path), str(log), "30"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and " start " in log.read_text()):
        time.sleep(0.1)
    assert log.exists(), "worker never started a trial"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert sum(1 for (_, s) in _cells_by_state(url).elements() if s == "RUNNING") == 1
    rerun = subprocess.run([sys.executable, str(WORKER), url, str(spec_path), str(log), "0"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    states = _cells_by_state(url)
    complete = [cell for (cell, state) in states.elements() if state == "COMPLETE"]
    assert len(complete) == 4 and len(set(complete)) == 4
    assert sum(1 for (_, s) in states.elements() if s == "RUNNING") == 0
    dead = [t for t in optuna.load_study(study_name="tiny@mini", storage=url).get_trials()
            if t.state == TrialState.FAIL]
    assert len(dead) == 1 and "died mid-trial" in dead[0].user_attrs["error"]


def test_changed_spec_is_refused(tmp_path):
    spec = _spec(tmp_path)
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    open_study(storage, spec, _StubProfile())
    changed = _spec(tmp_path, seeds="[0, 1, 2]")
    with pytest.raises(StudyMismatch, match="differs in: seeds"):
        open_study(storage, changed, _StubProfile())
