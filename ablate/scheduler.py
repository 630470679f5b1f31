"""Scheduling a study's cells on Optuna so that each runs exactly once.

A study is an Optuna study. Each cell (arm x seed) is enqueued as a WAITING trial with fixed params;
workers claim WAITING trials through the storage's atomic WAITING -> RUNNING transition (the same one
``Study.ask`` uses). GridSampler is not used: under concurrency it hands the same grid point to two
workers. Because two processes can enqueue the same missing cell at the same moment, a claimed trial
runs only if it is its cell's oldest live trial (COMPLETE first, then lowest number); others are
discarded as PRUNED with a note. Failed cells are re-enqueued on the next run, never counted.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from ablate import __version__
from ablate.profiles import Profile
from ablate.progress import Progress, duration
from ablate.results import save_scores
from ablate.spec import Cell, StudySpec

LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)


class StudyMismatch(RuntimeError):
    """The database holds a study of this name recorded with a different spec or profile."""


def study_name(spec_name: str, profile: str) -> str:
    return f"{spec_name}@{profile}"


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_study(storage, spec: StudySpec, profile: Profile, create: bool = True) -> optuna.Study:
    """Load the study, or create it recording the spec; refuse if the recorded spec differs."""
    name = study_name(spec.name, profile.name)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        if not create:
            raise StudyMismatch(f"no study {name!r} in this database") from None
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
            study.set_user_attr("spec", json.loads(spec.to_json()))
            study.set_user_attr("spec_fingerprint", spec.fingerprint())
            study.set_user_attr("profile", profile.describe())
            study.set_user_attr("ablate_version", __version__)
            study.set_user_attr("metric", spec.metric)
            return study
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
    _check_same_spec(study, spec)
    _check_same_profile(study, profile)
    return study


def _check_same_profile(study: optuna.Study, profile: Profile) -> None:
    recorded = study.user_attrs.get("profile", {})
    current = json.loads(json.dumps(profile.describe()))
    differing = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
    if differing:
        shown = ", ".join(f"{k}: recorded {recorded.get(k)!r}, now {current.get(k)!r}" for k in differing[:3])
        raise StudyMismatch(f"study {study.study_name!r} in this database was run with different profile "
                            f"settings ({shown}); use the same --profile-option values or a new database")


def _check_same_spec(study: optuna.Study, spec: StudySpec) -> None:
    for _ in range(50):  # a concurrent creator may not have written its attributes yet
        recorded = study.user_attrs.get("spec_fingerprint")
        if recorded is not None:
            break
        time.sleep(0.2)
    if recorded != spec.fingerprint():
        old = study.user_attrs.get("spec", {})
        new = json.loads(spec.to_json())
        differing = sorted(k for k in ("factors", "fixed", "seeds", "metric", "datasets") if old.get(k) != new.get(k))
        raise StudyMismatch(f"study {study.study_name!r} in this database was run with a different spec "
                            f"(differs in: {', '.join(differing) or 'unknown'}); use a new study name or database")


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone, so their cells return to the queue.

    A worker on this host whose process no longer exists is dead at once; any other worker is dead when
    its heartbeat is older than the storage's grace period.
    """
    failed = list(optuna.storages.fail_stale_trials(study) or [])
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        worker_host, _, pid = worker.rpartition(":")
        if worker_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            study._storage.set_trial_user_attr(trial._trial_id, "error", f"worker {worker} died mid-trial")
            if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                failed.append(trial.number)
    return failed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cell_params(cell: Cell) -> dict:
    return {**cell.arm.as_dict(), "seed": cell.seed}


def enqueue_missing(study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue every cell without a WAITING, RUNNING or COMPLETE trial; returns how many were added."""
    live = {t.user_attrs.get("cell") for t in study.get_trials(deepcopy=False, states=LIVE)}
    added = 0
    for cell in spec.cells():
        if cell.key not in live:
            study.enqueue_trial(cell_params(cell), user_attrs={"cell": cell.key, "arm": cell.arm.label,
                                                               "seed": cell.seed})
            added += 1
    return added


def _claim_waiting(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                return storage.get_trial(trial._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def _owner_of(study: optuna.Study, cell_key: str) -> int | None:
    """Trial number that owns a cell: its COMPLETE trial, else its lowest-numbered WAITING/RUNNING one."""
    trials = [t for t in study.get_trials(deepcopy=False, states=LIVE) if t.user_attrs.get("cell") == cell_key]
    complete = [t.number for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        return min(complete)
    return min((t.number for t in trials), default=None)


def claim_next(study: optuna.Study, spec: StudySpec) -> tuple[optuna.Trial, Cell] | None:
    """Atomically take the next waiting cell, or None when nothing is left to run."""
    cells = {c.key: c for c in spec.cells()}
    while True:
        frozen = _claim_waiting(study)
        if frozen is None:
            return None
        key = frozen.user_attrs.get("cell")
        storage = study._storage
        storage.set_trial_user_attr(frozen._trial_id, "worker", _worker_id())
        owner = _owner_of(study, key)
        if key not in cells or owner != frozen.number:
            note = f"duplicate of trial {owner}" if key in cells else "cell not in the current spec"
            storage.set_trial_user_attr(frozen._trial_id, "discarded", note)
            storage.set_trial_state_values(frozen._trial_id, TrialState.PRUNED)
            continue
        cell = cells[key]
        trial = optuna.trial.Trial(study, frozen._trial_id)
        for name, levels in spec.factors.items():
            trial._suggest(name, CategoricalDistribution(levels))
        trial._suggest("seed", CategoricalDistribution(spec.seeds))
        return trial, cell


class _Heartbeat:
    """Records the trial's heartbeat in the storage while it runs, as Optuna's own optimize loop does."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        interval = self.storage.get_heartbeat_interval() or 30
        while not self._stop.is_set():
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a transient database hiccup must not kill the trial
                pass
            self._stop.wait(interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class RunSummary:
    study: str
    cells: int
    ran: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    already_complete: int = 0
    seconds: float = 0.0


def run_study(spec: StudySpec, profile: Profile, storage, progress: Progress | None = None,
              max_trials: int | None = None, runner=None, models=None) -> RunSummary:
    """Run every missing or failed cell of ``spec`` in this process; safe to run in parallel with others.

    ``runner(spec, cell, profile, progress) -> TrialOutcome`` does one trial; the default trains and
    evaluates (``ablate.trial.run_trial``), reusing trained models from ``models`` (a ``ModelStore``).
    """
    if runner is None:
        from functools import partial

        from ablate.trial import run_trial

        runner = partial(run_trial, models=models)

    progress = progress or Progress(quiet=True)
    started = time.perf_counter()
    study = open_study(storage, spec, profile)
    dead = fail_dead_trials(study)
    if dead:
        progress.line(f"returned {len(dead)} cell(s) of dead workers to the queue (trials {dead})")
    enqueue_missing(study, spec)
    total = len(spec.cells())
    complete = {t.user_attrs.get("cell") for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    summary = RunSummary(study=study.study_name, cells=total, already_complete=len(complete & {c.key for c in spec.cells()}))
    if summary.already_complete == total:
        progress.line(f"{study.study_name}: all {total} cells complete; nothing to run")
    trial_seconds: list[float] = []
    while max_trials is None or summary.ran + len(summary.failed) < max_trials:
        claimed = claim_next(study, spec)
        if claimed is None:
            break
        trial, cell = claimed
        done = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        eta = ""
        if trial_seconds:
            left = total - done
            eta = f", ETA study {duration(left * sum(trial_seconds) / len(trial_seconds))}"
        progress.prefix = f"[{done + 1}/{total}] "
        progress.line(f"[{done + 1}/{total}] trial {trial.number}: {cell.label}{eta}")
        t0 = time.perf_counter()
        try:
            with _Heartbeat(study._storage, trial._trial_id):
                outcome = runner(spec, cell, profile, progress)
                save_scores(storage.engine, trial._trial_id, outcome.scores)
                for key, value in (("settings", outcome.settings), ("controls", outcome.controls),
                                   ("timings", outcome.timings),
                                   ("datasets", {s.dataset: s.revision for s in outcome.scores}),
                                   ("training_key", outcome.training_key), ("trained", outcome.trained),
                                   ("ablate_version", __version__)):
                    trial.set_user_attr(key, value)
                study.tell(trial, outcome.macro(spec.metric))
        except KeyboardInterrupt:
            trial.set_user_attr("error", "interrupted by the user")
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as err:
            message = f"{type(err).__name__}: {err}".splitlines()[0]
            trial.set_user_attr("error", message)
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            study.tell(trial, state=TrialState.FAIL)
            summary.failed.append((cell.label, message))
            progress.line(f"[{done + 1}/{total}] trial {trial.number} FAILED: {message}")
            continue
        elapsed = time.perf_counter() - t0
        trial_seconds.append(elapsed)
        summary.ran += 1
        progress.line(f"[{done + 1}/{total}] trial {trial.number} done in {duration(elapsed)}: "
                      f"macro {spec.metric} = {outcome.macro(spec.metric):.4f}")
    summary.seconds = time.perf_counter() - started
    return summary
