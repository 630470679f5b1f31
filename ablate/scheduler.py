"""Scheduling a study's cells on Optuna so that each runs exactly once, on any number of machines.

A study is an Optuna study. Each cell (arm x seed) is enqueued as a WAITING trial with fixed params;
workers claim WAITING trials through the storage's atomic WAITING -> RUNNING transition (the same one
``Study.ask`` uses). GridSampler is not used: under concurrency it hands the same grid point to two
workers; BruteForceSampler would treat a failed cell as visited. Because two processes can enqueue the
same missing cell at the same moment, a claimed trial runs only if it is its cell's oldest live trial
(COMPLETE first, then lowest number); others are discarded as PRUNED with a note.

Liveness: a running trial records Optuna heartbeats; a trial whose worker died (its process is gone, or
its heartbeat is older than the storage's grace period) is marked FAIL by whichever worker looks next,
and its cell is enqueued again. Every failed trial records why in the user attr ``failure``:
``error`` (the trial raised; retried up to ``max_retries`` times), ``config`` (an error a retry would
repeat; never retried automatically), ``lost`` (the worker died) or ``interrupted`` (stopped by a
signal); the last two always return the cell to the queue. ``retry_failed`` gives every cell a fresh
count. A cell's scores are written before its trial is COMPLETE and removed when a trial fails, so a
reader sees either a whole result or none.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from ablate import __version__
from ablate.profiles import Profile, ProfileError
from ablate.progress import Progress, duration
from ablate.provenance import package_versions
from ablate.results import save_scores
from ablate.spec import Cell, StudySpec
from ablate.storage import redact

LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
DEFAULT_MAX_RETRIES = 2
ERROR, CONFIG, LOST, INTERRUPTED = "error", "config", "lost", "interrupted"
RETRY_FROM = "retry_failures_from"  # study user attr: FAIL trials numbered below it no longer count


class StudyMismatch(RuntimeError):
    """The database holds a study of this name recorded with a different spec, profile or ablate version."""


def study_name(spec_name: str, profile: str) -> str:
    return f"{spec_name}@{profile}"


def _rdb(study: optuna.Study) -> optuna.storages.RDBStorage:
    """The RDBStorage under Optuna's caching wrapper (for its engine and heartbeat settings)."""
    return getattr(study._storage, "_backend", study._storage)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_study(storage, spec: StudySpec, profile: Profile, create: bool = True) -> optuna.Study:
    """Load the study, or create it recording the spec; refuse if the recorded spec, profile or version differs."""
    name = study_name(spec.name, profile.name)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        if not create:
            raise StudyMismatch(_missing_study_message(storage, name)) from None
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
            # The fingerprint goes last: a concurrent opener waits for it, then finds everything else.
            study.set_user_attr("ablate_version", __version__)
            study.set_user_attr("spec", json.loads(spec.to_json()))
            study.set_user_attr("profile", profile.describe())
            study.set_user_attr("metric", spec.metric)
            study.set_user_attr("spec_fingerprint", spec.fingerprint())
            return study
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
    _check_same_spec(study, spec)
    _check_same_version(study)
    _check_same_profile(study, profile)
    return study


def _missing_study_message(storage, name: str) -> str:
    names = sorted(optuna.get_all_study_names(storage))
    held = f"it holds {', '.join(names)}" if names else "it holds no study"
    return (f"no study {name!r} in {redact(storage.url)} "
            f"({held}); start it with `ablate run` or `ablate worker --create`")


def _check_same_version(study: optuna.Study) -> None:
    recorded = study.user_attrs.get("ablate_version")
    if recorded not in (None, __version__):
        raise StudyMismatch(f"study {study.study_name!r} was created by ablate {recorded}; this worker runs ablate "
                            f"{__version__}: install ablate {recorded} here, or use a new study name or database")


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


def shared_sqlite_warning(study: optuna.Study) -> str | None:
    """A warning when a SQLite study already has trials from workers on other hosts, else None.

    SQLite's locking is only safe for processes of one machine (not over a network file system), so
    workers on several machines need PostgreSQL.
    """
    url = _rdb(study).engine.url
    if url.get_backend_name() != "sqlite":
        return None
    here = socket.gethostname()
    hosts = sorted({t.user_attrs["worker"].rpartition(":")[0]
                    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
                    if "worker" in t.user_attrs} - {here})
    if not hosts:
        return None
    return (f"the SQLite database {url.database} already has trials from workers on {', '.join(hosts[:3])}, and "
            f"this worker runs on {here}; SQLite is for one machine: use PostgreSQL for workers on several")


def classify_failure(err: BaseException) -> str:
    """CONFIG for an error that a retry would repeat (a bad spec, profile, dataset or value), else ERROR.

    SpecError and DatasetError are ValueErrors; retrying them in a loop would only burn GPU hours.
    """
    return CONFIG if isinstance(err, (ValueError, ProfileError)) else ERROR


def _fail(study: optuna.Study, trial_id: int, kind: str, message: str, trace: str | None = None) -> bool:
    """Mark a trial FAIL with why; drops any scores an interrupted store left. False if it already finished."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, "error", message)
        storage.set_trial_user_attr(trial_id, "failure", kind)
        if trace:
            storage.set_trial_user_attr(trial_id, "traceback", trace[-4000:])
        failed = storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    save_scores(_rdb(study).engine, trial_id, [])
    return failed


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone, so their cells return to the queue.

    A worker on this host whose process no longer exists is dead at once; any other worker is dead when
    its heartbeat is older than the storage's grace period (Optuna's stale-trial check, measured on the
    database's clock, so the workers' clocks do not matter).
    """
    storage = study._storage
    running = {t._trial_id: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    reasons = {}
    if is_heartbeat_enabled(storage):
        grace = _rdb(study).grace_period or 2 * storage.get_heartbeat_interval()
        for trial_id in storage._get_stale_trial_ids(study._study_id):
            reasons[trial_id] = f"sent no heartbeat for over {grace}s (worker lost)"
    host = socket.gethostname()
    for trial_id, trial in running.items():
        worker_host, _, pid = trial.user_attrs.get("worker", "").rpartition(":")
        if worker_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            reasons[trial_id] = "died mid-trial"
    failed = []
    for trial_id, reason in reasons.items():
        trial = running.get(trial_id)
        worker = trial.user_attrs.get("worker", "unknown") if trial else "unknown"
        if trial and _fail(study, trial_id, LOST, f"worker {worker} {reason}"):
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


def _cell_history(study: optuna.Study) -> tuple[set[str], dict[str, list]]:
    """Cells with a live (WAITING, RUNNING or COMPLETE) trial, and each cell's counted FAIL trials."""
    since = study.user_attrs.get(RETRY_FROM, 0)
    live, failures = set(), defaultdict(list)
    for trial in study.get_trials(deepcopy=False):
        key = trial.user_attrs.get("cell")
        if trial.state in LIVE:
            live.add(key)
        elif trial.state == TrialState.FAIL and trial.number >= since:
            failures[key].append(trial)
    return live, failures


def _given_up(failures: list, max_retries: int) -> bool:
    """A cell is no longer retried after a CONFIG failure or more than ``max_retries`` ERROR failures.

    Lost and interrupted attempts do not count: the trial itself did nothing wrong.
    """
    kinds = [t.user_attrs.get("failure") for t in failures]
    return CONFIG in kinds or kinds.count(ERROR) > max_retries


def enqueue_missing(study: optuna.Study, spec: StudySpec, max_retries: int = DEFAULT_MAX_RETRIES) -> int:
    """Enqueue every cell without a live trial that may still be retried; returns how many were added."""
    live, failures = _cell_history(study)
    added = 0
    for cell in spec.cells():
        if cell.key not in live and not _given_up(failures[cell.key], max_retries):
            study.enqueue_trial(cell_params(cell), user_attrs={"cell": cell.key, "arm": cell.arm.label,
                                                               "seed": cell.seed})
            added += 1
    return added


def failed_cells(study: optuna.Study, spec: StudySpec, max_retries: int = DEFAULT_MAX_RETRIES) -> list[tuple[str, str]]:
    """(label, last error) of each cell that failed and is no longer retried automatically."""
    live, failures = _cell_history(study)
    return [(cell.label, failures[cell.key][-1].user_attrs.get("error", "no error recorded"))
            for cell in spec.cells() if cell.key not in live and _given_up(failures[cell.key], max_retries)]


def retry_failed_cells(study: optuna.Study) -> None:
    """Give every cell a fresh retry count: failures recorded so far no longer count (they stay visible)."""
    study.set_user_attr(RETRY_FROM, len(study.get_trials(deepcopy=False)))


def _claim_waiting(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                # At once, so that a worker lost right after claiming still goes stale.
                storage.record_heartbeat(trial._trial_id)
                return storage.get_trial(trial._trial_id)
        except UpdateFinishedTrialError:
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
    """Atomically take the next waiting cell, or None when nothing is waiting."""
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


def _running_cells(study: optuna.Study, spec: StudySpec) -> int:
    keys = {c.key for c in spec.cells()}
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if t.user_attrs.get("cell") in keys)


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
    failed: list[tuple[str, str]] = field(default_factory=list)  # cells failed for good: (label, error)
    already_complete: int = 0
    seconds: float = 0.0
    attempts_failed: int = 0  # this worker's failed attempts, retried or not
    returned: int = 0         # dead workers' trials this worker returned to the queue


def _store(study: optuna.Study, trial: optuna.Trial, spec: StudySpec, outcome) -> None:
    """Scores first (one transaction), then the attributes, then COMPLETE: readers only read COMPLETE trials."""
    save_scores(_rdb(study).engine, trial._trial_id, outcome.scores)
    for key, value in (("settings", outcome.settings), ("controls", outcome.controls),
                       ("timings", outcome.timings),
                       ("datasets", {s.dataset: s.revision for s in outcome.scores}),
                       ("training_key", outcome.training_key), ("trained", outcome.trained),
                       ("provenance", outcome.provenance),
                       ("ablate_version", __version__), ("versions", package_versions())):
        trial.set_user_attr(key, value)
    study.tell(trial, outcome.macro(spec.metric))


def _attempt(study, trial, cell, spec, profile, runner, progress) -> tuple[object | None, str | None]:
    """Run and store one claimed trial; returns (outcome, None) or (None, the error recorded)."""
    try:
        with _Heartbeat(study._storage, trial._trial_id):
            outcome = runner(spec, cell, profile, progress)
            _store(study, trial, spec, outcome)
        return outcome, None
    except KeyboardInterrupt:
        _fail(study, trial._trial_id, INTERRUPTED, "interrupted by the user")
        raise
    except UpdateFinishedTrialError:
        return None, f"trial {trial.number} was failed by another worker (heartbeat lost); its cell was requeued"
    except Exception as err:
        message = f"{type(err).__name__}: {err}".splitlines()[0]
        _fail(study, trial._trial_id, classify_failure(err), message, traceback.format_exc())
        return None, message


def _default_runner(models):
    from functools import partial

    from ablate.trial import run_trial

    return partial(run_trial, models=models)


def run_study(spec: StudySpec, profile: Profile, storage, progress: Progress | None = None,
              max_trials: int | None = None, runner=None, models=None, *, create: bool = True,
              max_retries: int = DEFAULT_MAX_RETRIES, retry_failed: bool = False, wait: bool = True,
              warn: Callable[[str], None] | None = None) -> RunSummary:
    """Work on ``spec``'s study until no cell is left to run; safe to run in parallel with other workers.

    Before each claim the worker fails dead workers' trials and enqueues missing and retryable cells, so
    a cell lost on one machine is picked up by any worker still running. With ``wait``, a worker that
    finds nothing to claim while other workers' trials run keeps watching them (every heartbeat
    interval) instead of leaving, so the cell of a worker that dies late is not left behind.

    ``runner(spec, cell, profile, progress) -> TrialOutcome`` does one trial; the default trains and
    evaluates (``ablate.trial.run_trial``), reusing trained models from ``models`` (a ``ModelStore``).
    """
    runner = runner or _default_runner(models)
    progress = progress or Progress(quiet=True)
    warn = warn or (lambda text: progress.line(f"warning: {text}"))
    started = time.perf_counter()
    profile.resolve()  # what the study records must be pinned before it is recorded or compared
    study = open_study(storage, spec, profile, create=create)
    if (note := shared_sqlite_warning(study)) is not None:
        warn(note)
    if retry_failed:
        retry_failed_cells(study)
    total = len(spec.cells())
    keys = {c.key for c in spec.cells()}
    complete = {t.user_attrs.get("cell") for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    summary = RunSummary(study=study.study_name, cells=total, already_complete=len(complete & keys))
    if summary.already_complete == total:
        progress.line(f"{study.study_name}: all {total} cells complete; nothing to run")
    trial_seconds: list[float] = []
    poll = storage.get_heartbeat_interval() or 5
    while max_trials is None or summary.ran + summary.attempts_failed < max_trials:
        dead = fail_dead_trials(study)
        if dead:
            summary.returned += len(dead)
            progress.line(f"returned {len(dead)} cell(s) of dead workers to the queue (trials {dead})")
        enqueue_missing(study, spec, max_retries)
        claimed = claim_next(study, spec)
        if claimed is None:
            if wait and _running_cells(study, spec):
                time.sleep(poll)
                continue
            break
        trial, cell = claimed
        done = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        eta = ""
        if trial_seconds:
            eta = f", ETA study {duration((total - done) * sum(trial_seconds) / len(trial_seconds))}"
        progress.prefix = f"[{done + 1}/{total}] "
        progress.line(f"[{done + 1}/{total}] trial {trial.number}: {cell.label}{eta}")
        t0 = time.perf_counter()
        outcome, error = _attempt(study, trial, cell, spec, profile, runner, progress)
        if error is not None:
            summary.attempts_failed += 1
            progress.line(f"[{done + 1}/{total}] trial {trial.number} FAILED: {error}")
            continue
        elapsed = time.perf_counter() - t0
        trial_seconds.append(elapsed)
        summary.ran += 1
        progress.line(f"[{done + 1}/{total}] trial {trial.number} done in {duration(elapsed)}: "
                      f"macro {spec.metric} = {outcome.macro(spec.metric):.4f}")
    summary.failed = failed_cells(study, spec, max_retries)
    summary.seconds = time.perf_counter() - started
    return summary
