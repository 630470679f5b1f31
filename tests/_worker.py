"""A scheduler worker for tests: runs a study with a cheap trial that records each execution.

Usage: python _worker.py STORAGE_URL SPEC_PATH LOG_PATH SLEEP_SECONDS
The trial double returns per-query scores derived from the cell, so the scheduler is exercised with a
real Optuna database while nothing trains.
"""

import os
import sys
import time

import polars as pl

from ablate.evaluate import DatasetScores
from ablate.profiles import MiniProfile
from ablate.scheduler import run_study
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
        scores = [DatasetScores("toy", "r1", per_query, ranked, {}, True, 64)]
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()} done {cell.key}\n")
        return TrialOutcome(scores, {}, {}, {"total_s": sleep})

    return run


class _StubProfile(MiniProfile):
    """Mini profile description without building the world (the trial double needs no data)."""

    def describe(self):
        return {"profile": "mini", "test": True}


if __name__ == "__main__":
    url, spec_path, log_path, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    summary = run_study(load_spec(spec_path), _StubProfile(), open_storage(url),
                        runner=recording_runner(log_path, sleep))
    print(f"ran={summary.ran} failed={len(summary.failed)}")
