"""Per-query results, stored beside Optuna's tables in the same database.

One row per (trial, dataset) holds the per-query metrics and the top-100 ranking as Parquet blobs:
compact, typed and fast to read back as polars frames. A trial's rows are written in one transaction
*before* the trial is marked COMPLETE, and readers only take rows of COMPLETE trials, so nobody ever
sees a partial result.
"""

from __future__ import annotations

import io
import json

import polars as pl
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, Text, delete, insert, select

_metadata = MetaData()

scores_table = Table(
    "ablate_scores",
    _metadata,
    Column("trial_id", Integer, primary_key=True),
    Column("dataset", String(255), primary_key=True),
    Column("revision", String(255), nullable=False),
    Column("n_queries", Integer, nullable=False),
    Column("per_query", LargeBinary, nullable=False),
    Column("ranked", LargeBinary, nullable=False),
    Column("summary", Text, nullable=False),
)


def create_tables(engine) -> None:
    _metadata.create_all(engine)


def _to_parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def _from_parquet(blob: bytes) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(blob))


def save_scores(engine, trial_id: int, dataset_scores) -> None:
    """Store all datasets of one trial atomically (replacing rows of an earlier attempt of the same id)."""
    rows = [{
        "trial_id": trial_id,
        "dataset": s.dataset,
        "revision": s.revision,
        "n_queries": s.per_query.height,
        "per_query": _to_parquet(s.per_query),
        "ranked": _to_parquet(s.ranked),
        "summary": json.dumps({"mteb": s.mteb_scores, "ignore_identical_ids": s.ignore_identical_ids,
                               "max_seq_length": s.max_seq_length, "split": s.split,
                               "documents_encoded": s.documents_encoded,
                               "documents_reused": s.documents_reused}),
    } for s in dataset_scores]
    with engine.begin() as conn:
        conn.execute(delete(scores_table).where(scores_table.c.trial_id == trial_id))
        if rows:
            conn.execute(insert(scores_table), rows)


def load_scores(engine, trial_ids: list[int], with_ranked: bool = False) -> pl.DataFrame:
    """Long frame (trial_id, dataset, revision, query_id, metrics...) for the given trials."""
    if not trial_ids:
        return pl.DataFrame()
    columns = [scores_table.c.trial_id, scores_table.c.dataset, scores_table.c.revision, scores_table.c.per_query]
    if with_ranked:
        columns.append(scores_table.c.ranked)
    frames = []
    with engine.connect() as conn:
        for chunk_start in range(0, len(trial_ids), 500):
            chunk = trial_ids[chunk_start:chunk_start + 500]
            for row in conn.execute(select(*columns).where(scores_table.c.trial_id.in_(chunk))):
                frame = _from_parquet(row.per_query)
                if with_ranked:
                    frame = frame.join(_from_parquet(row.ranked), on="query_id", how="left")
                frames.append(frame.with_columns(pl.lit(row.trial_id).alias("trial_id"),
                                                 pl.lit(row.dataset).alias("dataset"),
                                                 pl.lit(row.revision).alias("revision")))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="vertical").select("trial_id", "dataset", "revision", pl.exclude(
        "trial_id", "dataset", "revision"))
