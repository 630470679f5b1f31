"""Read a study database into polars frames: one row per trial, and one row per trial x dataset x query.

Only COMPLETE trials contribute scores; a running or failed trial's rows are never visible.
"""

from __future__ import annotations

import json

import optuna
import polars as pl
from optuna.trial import TrialState

from ablate.results import load_scores


def trials_frame(study: optuna.Study) -> pl.DataFrame:
    """One row per trial: number, state, cell, arm, seed, factor levels, controls, timings, error."""
    spec = study.user_attrs.get("spec", {})
    factors = list(spec.get("factors", {}))
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row = {
            "trial_id": t._trial_id,
            "number": t.number,
            "state": t.state.name,
            "cell": attrs.get("cell"),
            "arm": attrs.get("arm"),
            "seed": attrs.get("seed"),
            "value": t.value if t.state == TrialState.COMPLETE else None,
            "started": t.datetime_start,
            "completed": t.datetime_complete,
            "worker": attrs.get("worker"),
            "error": attrs.get("error"),
            "discarded": attrs.get("discarded"),
        }
        cell = json.loads(attrs["cell"]) if attrs.get("cell") else {}
        for name in factors:
            row[name] = cell.get(name)
        for key, value in (attrs.get("controls") or {}).items():
            row[f"control.{key}"] = value
        for key, value in (attrs.get("timings") or {}).items():
            row[f"time.{key}"] = value
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def scores_frame(study: optuna.Study, engine, with_ranked: bool = False) -> pl.DataFrame:
    """Long per-query frame of COMPLETE trials: trial_id, arm, seed, factor levels, dataset, query_id, metrics."""
    trials = trials_frame(study)
    if trials.is_empty():
        return pl.DataFrame()
    complete = trials.filter(pl.col("state") == "COMPLETE")
    scores = load_scores(engine, complete["trial_id"].to_list(), with_ranked=with_ranked)
    if scores.is_empty():
        return scores
    keep = ["trial_id", "number", "arm", "seed"] + list(study.user_attrs.get("spec", {}).get("factors", {}))
    return complete.select(keep).join(scores, on="trial_id", how="inner")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with padded columns (readable as plain text too)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
