"""A scheduler worker for tests: runs a study with a cheap trial that records each execution.

Usage: python _worker.py STORAGE_URL SPEC_PATH LOG_PATH SLEEP_SECONDS [--host NAME] [--heartbeat S]
[--grace S] [--no-wait] [--crash POINT]
The trial double returns per-query scores derived from the cell, so the scheduler is exercised with a
real Optuna database while nothing trains. ``--host`` makes the worker report another machine's name (so
only its heartbeat can prove it alive); ``--crash`` kills the process (as ``kill -9`` would) at a point of
storing the first result: ``in_scores`` (inside the scores transaction), ``after_scores`` or ``before_tell``.
"""

import argparse
import os
import signal
import socket
import sys
import time

import polars as pl

from ablate.evaluate import DatasetScores
from ablate.profiles import MiniProfile
from ablate.spec import load_spec
from ablate.storage import open_storage
from ablate.trial import TrialOutcome


def recording_runner(log_path: str, sleep: float):
    def run(spec, cell, profile, progress):
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()} start {cell.key}\n")
        time.sleep(sleep)
        per_query = pl.DataFrame({"query_id": ["q1", "q2"], "ndcg_at_10": [cell.seed / 10, 0.5],
                                  "mrr_at_10": [0.0, 0.0], "recall_at_100": [1.0, 1.0]})
        ranked = pl.DataFrame({"query_id": ["q1", "q2"], "doc_ids": [["d1"], ["d2"]], "scores": [[1.0], [1.0]]},
                              schema={"query_id": pl.String, "doc_ids": pl.List(pl.String),
                                      "scores": pl.List(pl.Float32)})
        scores = [DatasetScores("toy", "r1", per_query, ranked, {}, True, 64),
                  DatasetScores("toy2", "r1", per_query, ranked, {}, True, 64)]
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()} done {cell.key}\n")
        return TrialOutcome(scores, {}, {}, {"total_s": sleep})

    return run


class _StubProfile(MiniProfile):
    """Mini profile description without building the world (the trial double needs no data)."""

    def describe(self):
        return {"profile": "mini", "test": True}


def _die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def _crash_at(point: str) -> None:
    """Make the process die at ``point`` the first time a result is stored."""
    import optuna

    import ablate.results
    import ablate.scheduler

    if point == "in_scores":
        ablate.results.insert = _die
    elif point == "after_scores":
        original = ablate.scheduler.save_scores

        def save_then_die(engine, trial_id, scores):
            original(engine, trial_id, scores)
            if scores:
                _die()

        ablate.scheduler.save_scores = save_then_die
    elif point == "before_tell":
        optuna.Study.tell = _die


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "spec_path", "log_path"):
        parser.add_argument(name)
    parser.add_argument("sleep", type=float)
    parser.add_argument("--host")
    parser.add_argument("--heartbeat", type=int, default=20)
    parser.add_argument("--grace", type=int, default=90)
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--crash", choices=("in_scores", "after_scores", "before_tell"))
    args = parser.parse_args(argv)
    if args.host:
        socket.gethostname = lambda: args.host
    if args.crash:
        _crash_at(args.crash)
    from ablate.scheduler import run_study
    from ablate.worker import interrupt_on_sigterm

    interrupt_on_sigterm()  # as `ablate worker` does
    with open(args.log_path, "a") as log:
        log.write(f"{os.getpid()} device {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\n")
    storage = open_storage(args.url, heartbeat_interval=args.heartbeat, grace_period=args.grace)
    summary = run_study(load_spec(args.spec_path), _StubProfile(), storage, wait=not args.no_wait,
                        runner=recording_runner(args.log_path, args.sleep))
    print(f"ran={summary.ran} failed={len(summary.failed)} returned={summary.returned}")


if __name__ == "__main__":
    main(sys.argv[1:])
