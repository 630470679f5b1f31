"""Where each study stands: cells complete, running, failed and waiting, the last errors, and an ETA.

A cell (arm x seed) is counted once, by its most telling trial: COMPLETE if any trial of it completed,
else RUNNING, else FAILED if its latest attempt failed, else WAITING (queued, or not enqueued yet: the
next ``ablate run`` adds it). Failed cells are retried by the next ``ablate run``; they are not in the
ETA of the running workers. The ETA divides the work left (waiting cells at the mean measured time of
complete trials, plus what running trials still need) by the number of trials running now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from optuna.trial import TrialState

from ablate.progress import duration
from ablate.query import StudyDatabase


@dataclass
class StudyStatus:
    study: str
    cells: int
    complete: int = 0
    running: int = 0
    failed: int = 0
    waiting: int = 0
    mean_trial_s: float | None = None
    eta_s: float | None = None
    errors: list[tuple[str, int, str]] = field(default_factory=list)  # (cell label, trial number, error)
    extra_trials: int = 0  # trials of cells no longer in the spec

    def lines(self) -> list[str]:
        mean = f"mean trial {duration(self.mean_trial_s)}" if self.mean_trial_s is not None else "no trial finished yet"
        if self.running + self.waiting == 0:
            eta = "nothing left to run" if not self.failed else "failed cells rerun with `ablate run --retry-failed`"
        elif self.eta_s is None:
            eta = "ETA unknown until a trial finishes"
        else:
            eta = f"ETA {duration(self.eta_s)}" + ("" if self.running else " once a worker runs it")
        out = [f"{self.study}: {self.cells} cells: {self.complete} complete, {self.running} running, "
               f"{self.failed} failed, {self.waiting} waiting; {mean}; {eta}"]
        out += [f"  failed: {label} (trial {number}): {error}" for label, number, error in self.errors]
        return out


def _cell_label(cell_key: str) -> str:
    try:
        return ", ".join(f"{k}={v}" for k, v in json.loads(cell_key).items())
    except (TypeError, ValueError):
        return str(cell_key)


def _expected_cells(spec: dict) -> list[str]:
    """Cell keys of the recorded spec, in the spec's order (the same keys the scheduler writes)."""
    from ablate.spec import parse_spec

    try:
        return [c.key for c in parse_spec(spec, "<recorded spec>").cells()]
    except Exception:  # a spec recorded by another version: fall back to the cells seen in trials
        return []


def study_status(db: StudyDatabase, name: str, now: datetime | None = None) -> StudyStatus:
    name = db.resolve_study(name)
    trials = db.frozen_trials(name)
    expected = _expected_cells(db.study(name).user_attrs.get("spec", {}))
    seen = list(dict.fromkeys(t.user_attrs.get("cell") for t in trials if t.user_attrs.get("cell")))
    cells = expected or seen
    by_cell: dict[str, list] = {key: [] for key in cells}
    for t in trials:
        if t.user_attrs.get("cell") in by_cell:
            by_cell[t.user_attrs["cell"]].append(t)
    status = StudyStatus(study=name, cells=len(cells), extra_trials=len(set(seen) - set(cells)))
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                 if t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete]
    status.mean_trial_s = sum(durations) / len(durations) if durations else None
    now = now or datetime.now()
    running_left = 0.0
    for key in cells:
        attempts = sorted(by_cell[key], key=lambda t: t.number)
        states = {t.state for t in attempts}
        if TrialState.COMPLETE in states:
            status.complete += 1
        elif TrialState.RUNNING in states:
            status.running += 1
            started = max(t.datetime_start for t in attempts if t.state == TrialState.RUNNING and t.datetime_start)
            if status.mean_trial_s is not None:
                running_left += max(0.0, status.mean_trial_s - (now - started).total_seconds())
        elif TrialState.WAITING not in states and attempts and attempts[-1].state == TrialState.FAIL:
            status.failed += 1
            last = attempts[-1]
            error = last.user_attrs.get("error") or "no error recorded"
            kind = last.user_attrs.get("failure")  # recorded by newer schedulers: error, config, lost, ...
            status.errors.append((_cell_label(key), last.number, f"[{kind}] {error}" if kind else error))
        else:
            status.waiting += 1
    if status.mean_trial_s is not None and status.running + status.waiting:
        workers = max(1, status.running)
        status.eta_s = (status.waiting * status.mean_trial_s + running_left) / workers
    return status


def database_status(db: StudyDatabase, study: str | None = None) -> list[StudyStatus]:
    """Status of ``study`` or of every study in the database, in name order."""
    names = [db.resolve_study(study)] if study else db.study_names
    return [study_status(db, name) for name in names]
