"""Workers on many machines: exactly once on SQLite and PostgreSQL, heartbeats, retries, atomic results, misuse.

Scheduling guarantees are proven with subprocess workers (tests/_worker.py) running a cheap trial double
against a real database; ``--host`` makes a worker pose as another machine, so only its heartbeat can
show it alive.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import func, select

from ablate.results import scores_table
from ablate.scheduler import StudyMismatch, open_study, run_study
from ablate.spec import load_spec
from ablate.storage import StorageError, open_storage
from conftest import TINY_SPEC, write_spec
from _worker import _StubProfile, recording_runner

WORKER = Path(__file__).parent / "_worker.py"
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _spec_path(tmp_path, seeds="[0, 1]") -> Path:
    """A 2-arm spec with a name of its own, so that tests sharing one PostgreSQL database never meet."""
    name = f"w{uuid.uuid4().hex[:8]}"
    body = TINY_SPEC.format(name=name, datasets='"factoid"').replace("seeds = [0, 1]", f"seeds = {seeds}")
    return write_spec(tmp_path, name, body)


def _trials(url, spec_path):
    return optuna.load_study(study_name=f"{spec_path.stem}@mini", storage=url).get_trials()


def _complete_cells(url, spec_path) -> Counter:
    return Counter(t.user_attrs["cell"] for t in _trials(url, spec_path) if t.state == TrialState.COMPLETE)


def _starts(log: Path) -> Counter:
    return Counter(line.split(" ", 2)[2] for line in log.read_text().splitlines() if " start " in line)


def _worker(url, spec_path, log, sleep, *options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), url, str(spec_path), str(log), str(sleep), *options],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, seconds=90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'w.db'}"
    else:
        from results_fixture import postgres_database

        url = postgres_database()
    open_storage(url)  # tables created once, as the first worker does
    return url


# -- exactly once, many processes ---------------------------------------------------------------------------


def test_worker_processes_share_the_queue_and_run_each_cell_once(db_url, tmp_path):
    from ablate.worker import run_processes

    spec_path = _spec_path(tmp_path, seeds="[0, 1, 2, 3, 4, 5]")
    log = tmp_path / "log"
    argv = [sys.executable, str(WORKER), db_url, str(spec_path), str(log), "0.3"]
    assert run_processes(argv, ["0", "1", "2"], env={"PYTHONPATH": ENV["PYTHONPATH"]}) == 0
    starts = _starts(log)
    assert len(starts) == 12 and set(starts.values()) == {1}, starts
    complete = _complete_cells(db_url, spec_path)
    assert len(complete) == 12 and set(complete.values()) == {1}
    lines = log.read_text().splitlines()
    assert {line.split()[2] for line in lines if " device " in line} == {"0", "1", "2"}  # one per GPU id
    assert len({line.split()[0] for line in lines if " start " in line}) >= 2  # the work really was shared


def test_lost_worker_cell_is_picked_up_by_a_running_worker(db_url, tmp_path):
    spec_path = _spec_path(tmp_path)
    log = tmp_path / "log"
    beat = ("--heartbeat", "1", "--grace", "3")
    victim = _worker(db_url, spec_path, log, 60, "--host", "machine-a", *beat)
    _wait_for(lambda: log.exists() and " start " in log.read_text())
    survivor = _worker(db_url, spec_path, log, 0.2, *beat)
    victim.send_signal(signal.SIGKILL)  # a lost machine: no cleanup, and not a process this host can see
    victim.wait()
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err[-3000:]
    assert "returned=1" in out
    complete = _complete_cells(db_url, spec_path)
    assert len(complete) == 4 and set(complete.values()) == {1}
    lost = [t for t in _trials(db_url, spec_path) if t.state == TrialState.FAIL]
    assert len(lost) == 1 and lost[0].user_attrs["failure"] == "lost"
    assert lost[0].user_attrs["error"].startswith("worker machine-a:") and "heartbeat" in lost[0].user_attrs["error"]


def test_sigterm_returns_the_cell_at_once_and_does_not_count_as_a_retry(tmp_path):
    spec_path = _spec_path(tmp_path, seeds="[0]")
    url = f"sqlite:///{tmp_path / 'w.db'}"
    log = tmp_path / "log"
    worker = _worker(url, str(spec_path), log, 60)
    _wait_for(lambda: log.exists() and " start " in log.read_text())
    worker.send_signal(signal.SIGTERM)  # what a pre-empted machine gets first
    worker.communicate(timeout=60)
    [stopped] = [t for t in _trials(url, spec_path) if t.state == TrialState.FAIL]
    assert stopped.user_attrs["failure"] == "interrupted"
    summary = run_study(load_spec(spec_path), _StubProfile(), open_storage(url), max_retries=0,
                        runner=recording_runner(str(log), 0))
    assert summary.ran == 2 and not summary.failed


# -- retries ----------------------------------------------------------------------------------------------


def _failing(error: Exception, times: int, log: Path):
    """A runner whose cell (per_device_batch=32, seed=0) raises ``error`` on its first ``times`` attempts."""
    good, attempts = recording_runner(str(log), 0), Counter()

    def run(spec, cell, profile, progress):
        if cell.label == "per_device_batch=32, seed=0":
            attempts[cell.key] += 1
            if attempts[cell.key] <= times:
                raise error
        return good(spec, cell, profile, progress)

    return run


def test_transient_error_is_retried_in_the_same_run(tmp_path):
    spec = load_spec(_spec_path(tmp_path))
    storage = open_storage(f"sqlite:///{tmp_path / 'w.db'}")
    summary = run_study(spec, _StubProfile(), storage, runner=_failing(RuntimeError("CUDA error"), 2, tmp_path / "l"))
    assert summary.ran == 4 and summary.attempts_failed == 2 and not summary.failed


def test_configuration_error_is_not_retried(tmp_path):
    spec_path = _spec_path(tmp_path)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    runner = _failing(ValueError("mini_batch_size must divide the batch"), 99, tmp_path / "l")
    first = run_study(load_spec(spec_path), _StubProfile(), open_storage(url), runner=runner)
    assert first.ran == 3 and first.attempts_failed == 1
    assert first.failed == [("per_device_batch=32, seed=0", "ValueError: mini_batch_size must divide the batch")]
    again = run_study(load_spec(spec_path), _StubProfile(), open_storage(url), runner=runner, max_retries=5)
    assert again.ran == 0 and again.attempts_failed == 0 and again.failed == first.failed
    [failed] = [t for t in _trials(url, spec_path) if t.state == TrialState.FAIL]
    assert failed.user_attrs["failure"] == "config"


# -- atomic results -------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["in_scores", "after_scores", "before_tell"])
def test_crash_while_storing_leaves_the_whole_result_or_none(tmp_path, point):
    from ablate.query import StudyDatabase

    spec_path = _spec_path(tmp_path, seeds="[0]")
    url = f"sqlite:///{tmp_path / 'w.db'}"
    log = tmp_path / "log"
    crashed = _worker(url, spec_path, log, 0, "--crash", point)
    crashed.communicate(timeout=120)
    assert crashed.returncode == -9
    assert [t.state for t in _trials(url, spec_path)].count(TrialState.COMPLETE) == 0
    assert StudyDatabase(url).runs.collect().height == 0  # readers see nothing of the crashed cell
    summary = run_study(load_spec(spec_path), _StubProfile(), open_storage(url), runner=recording_runner(str(log), 0))
    assert summary.ran == 2 and summary.returned == 1
    runs = StudyDatabase(url).runs.collect()
    assert runs.height == 4 and runs.group_by("trial_id").len()["len"].to_list() == [2, 2]  # whole results
    with open_storage(url).engine.connect() as conn:  # and no orphan rows of the crashed attempt
        assert conn.execute(select(func.count()).select_from(scores_table)).scalar_one() == 4


# -- bad input and misuse ---------------------------------------------------------------------------------


def test_grace_period_must_outlast_the_heartbeat(tmp_path):
    with pytest.raises(StorageError, match="grace period must be longer"):
        open_storage(f"sqlite:///{tmp_path / 'w.db'}", heartbeat_interval=30, grace_period=30)


def test_sqlite_used_from_another_host_warns_once(tmp_path, monkeypatch):
    spec = load_spec(_spec_path(tmp_path, seeds="[0]"))
    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setattr(socket, "gethostname", lambda: "machine-a")
    run_study(spec, _StubProfile(), open_storage(url), runner=recording_runner(str(tmp_path / "l"), 0), max_trials=1)
    monkeypatch.undo()
    warnings = []
    run_study(spec, _StubProfile(), open_storage(url), runner=recording_runner(str(tmp_path / "l"), 0),
              warn=warnings.append)
    assert len(warnings) == 1 and "machine-a" in warnings[0] and "PostgreSQL" in warnings[0]
    again = []
    run_study(spec, _StubProfile(), open_storage(url), runner=recording_runner(str(tmp_path / "l"), 0), warn=again.append)
    assert len(again) == 1  # once per worker start, not once per trial


def _cli(*args, env=None):
    from click.testing import CliRunner

    from ablate.cli import main
    from ablate.cli_worker import register

    if "worker" not in main.commands:
        register(main)
    return CliRunner().invoke(main, list(args), env=env)


def test_unreachable_storage_is_one_line_without_the_password(tmp_path):
    spec_path = _spec_path(tmp_path)
    result = _cli("worker", str(spec_path), "--storage", "postgresql+psycopg2://someone:hunter2@localhost:1/db")
    assert result.exit_code == 2
    assert result.output.startswith("error: cannot open storage postgresql+psycopg2://someone:***@localhost:1/db")
    assert "hunter2" not in result.output and len(result.output.strip().splitlines()) == 1


def test_study_that_does_not_exist_is_refused(tmp_path):
    spec_path = _spec_path(tmp_path)
    result = _cli("worker", str(spec_path), "--storage", f"sqlite:///{tmp_path / 'w.db'}")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: no study '{spec_path.stem}@mini' in sqlite:///")
    assert "--create" in result.output and len(result.output.strip().splitlines()) == 1


def test_worker_of_another_version_is_refused(tmp_path):
    spec_path = _spec_path(tmp_path)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    study = open_study(open_storage(url), load_spec(spec_path), _StubProfile())
    study.set_user_attr("ablate_version", "0.0.9")
    with pytest.raises(StudyMismatch, match="created by ablate 0.0.9; this worker runs ablate 0.1.0"):
        open_study(open_storage(url), load_spec(spec_path), _StubProfile())
    result = _cli("worker", str(spec_path), "--storage", url)
    assert result.exit_code == 2 and "ablate 0.0.9" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("options, message", [
    (["--workers", "2", "--gpus", "0"], "not both"),
    (["--gpus", "0,x"], "distinct GPU ids"),
    (["--heartbeat-interval", "90"], "grace period must be longer"),
])
def test_bad_worker_options_exit_2(tmp_path, options, message):
    result = _cli("worker", str(_spec_path(tmp_path)), "--storage", f"sqlite:///{tmp_path / 'w.db'}", *options)
    assert result.exit_code == 2 and message in result.output


def test_gpus_start_one_worker_process_each_without_the_url_on_the_command_line(tmp_path, monkeypatch, model_cache):
    import ablate.worker

    started = {}
    monkeypatch.setattr(ablate.worker, "run_processes",
                        lambda argv, devices, env: started.update(argv=argv, devices=devices, env=env) or 0)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    result = _cli("worker", str(_spec_path(tmp_path)), "--storage", url, "--create", "--gpus", "0,1",
                  "--profile-option", "subset_examples=64", "--heartbeat-interval", "5", "--quiet",
                  env={"ABLATE_CACHE": str(model_cache)})
    assert result.exit_code == 0, result.output
    assert started["devices"] == ["0", "1"] and started["env"] == {"ABLATE_STORAGE": url}
    argv = started["argv"]
    assert argv[1:4] == ["-m", "ablate.cli_worker", "worker"] and url not in " ".join(argv)
    assert "--gpus" not in argv and "--create" not in argv
    assert argv[argv.index("--heartbeat-interval") + 1] == "5" and "--quiet" in argv
    assert argv[argv.index("--profile-option") + 1] == "subset_examples=64"
