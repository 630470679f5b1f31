"""The crossed seeds x queries layout: a long score table pivoted once into arrays.

Every later computation (contrasts, variance components, the two-way bootstrap) works on
``CrossedDesign.scores[dataset][config]``, an array of shape (seeds of that config, queries of
that dataset). Building it checks that the study is complete: every run (config, seed) scores
every query of every dataset exactly once.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

_NO_DATASET = "(all)"


@dataclass(frozen=True)
class Columns:
    """Column names of the long score table (one row per dataset, query, config, seed)."""

    dataset: str = "dataset"
    query: str = "query"
    config: str = "config"
    seed: str = "seed"
    score: str = "score"


def _columns(columns: Columns | Mapping[str, str] | None) -> Columns:
    if columns is None:
        return Columns()
    if isinstance(columns, Columns):
        return columns
    if isinstance(columns, Mapping):
        unknown = set(columns) - {"dataset", "query", "config", "seed", "score"}
        if unknown:
            raise ValueError(
                f"columns has unknown key(s) {sorted(unknown)}; valid keys: dataset, query, config, seed, score"
            )
        return Columns(**columns)
    raise ValueError(f"columns must be a Columns, a mapping of role -> column name, or None; got {type(columns).__name__}")


@dataclass(frozen=True)
class CrossedDesign:
    """Scores of a crossed study, pivoted: ``scores[dataset][config]`` is (n_seeds_c, n_queries_k).

    Seeds are nested in configs: seed 0 of config A and seed 0 of config B are different
    training runs and are never paired, even when they share a seed number. Runs (config,
    seed) are shared across datasets: the same trained model is scored on every dataset.
    """

    datasets: tuple[Hashable, ...]
    configs: tuple[Hashable, ...]
    seeds: Mapping[Hashable, tuple[Hashable, ...]]
    queries: Mapping[Hashable, tuple[Hashable, ...]] = field(repr=False)
    scores: Mapping[Hashable, Mapping[Hashable, np.ndarray]] = field(repr=False)

    @property
    def n_queries(self) -> dict[Hashable, int]:
        return {k: len(q) for k, q in self.queries.items()}

    @property
    def n_seeds(self) -> dict[Hashable, int]:
        return {c: len(s) for c, s in self.seeds.items()}

    @classmethod
    def from_table(cls, table: pl.DataFrame, columns: Columns | Mapping[str, str] | None = None) -> CrossedDesign:
        """Pivot a long table with columns dataset, query, config, seed, score (names via ``columns``).

        The dataset column may be absent (one dataset). Raises ValueError on missing columns,
        null/NaN scores, duplicate rows, or any run that does not score every query.
        """
        cols = _columns(columns)
        if not isinstance(table, pl.DataFrame):
            raise ValueError(f"table must be a polars DataFrame, got {type(table).__name__}")
        needed = [cols.query, cols.config, cols.seed, cols.score]
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise ValueError(f"table lacks column(s) {missing}; expected {needed} (+ optional {cols.dataset!r}); "
                             "rename via columns=")
        if table.height == 0:
            raise ValueError("table is empty")
        ds_col = cols.dataset
        df = table.select(needed + ([ds_col] if ds_col in table.columns else []))
        if ds_col not in table.columns:
            ds_col = "__dataset__"
            df = df.with_columns(pl.lit(_NO_DATASET).alias(ds_col))
        key_cols = [ds_col, cols.query, cols.config, cols.seed]
        nulls = df.select(pl.col(key_cols + [cols.score]).null_count()).row(0, named=True)
        bad = {k: v for k, v in nulls.items() if v}
        if bad:
            raise ValueError(f"table has null values in {bad}; score missing queries as 0 upstream (trec_eval -c)")
        if not df.schema[cols.score].is_numeric():
            raise ValueError(f"column {cols.score!r} must be numeric, got {df.schema[cols.score]}")
        score_all = df.get_column(cols.score).cast(pl.Float64).to_numpy()
        if not np.isfinite(score_all).all():
            raise ValueError(f"column {cols.score!r} has {int((~np.isfinite(score_all)).sum())} NaN/inf values")

        runs = df.select(cols.config, cols.seed).unique().sort([cols.config, cols.seed]).with_row_index("__r__")
        qs = (
            df.select(ds_col, cols.query).unique().sort([ds_col, cols.query])
            .with_columns(pl.int_range(pl.len()).over(ds_col).alias("__q__"))
        )
        df = df.join(runs, on=[cols.config, cols.seed]).join(qs, on=[ds_col, cols.query])
        run_config = runs.get_column(cols.config).to_list()
        run_seed = runs.get_column(cols.seed).to_list()
        configs = tuple(dict.fromkeys(run_config))
        seeds = {c: tuple(s for rc, s in zip(run_config, run_seed) if rc == c) for c in configs}
        n_runs = runs.height

        datasets: list[Hashable] = []
        queries: dict[Hashable, tuple[Hashable, ...]] = {}
        scores: dict[Hashable, dict[Hashable, np.ndarray]] = {}
        for (k,), block in df.sort(ds_col).partition_by(ds_col, as_dict=True, maintain_order=True).items():
            qids = tuple(qs.filter(pl.col(ds_col) == k).sort("__q__").get_column(cols.query).to_list())
            nq = len(qids)
            code = block.get_column("__r__").to_numpy().astype(np.int64) * nq + block.get_column("__q__").to_numpy()
            counts = np.bincount(code, minlength=n_runs * nq)
            if (counts != 1).any():
                cell = int(np.argmax(counts != 1))
                r, q = divmod(cell, nq)
                what = "has no score" if counts[cell] == 0 else f"has {counts[cell]} rows"
                raise ValueError(
                    f"dataset {k!r}: run (config={run_config[r]!r}, seed={run_seed[r]!r}) {what} for query "
                    f"{qids[q]!r}; every run must score every query exactly once "
                    f"({int((counts == 0).sum())} missing, {int((counts > 1).sum())} duplicated cells). "
                    "Score missing queries as 0 upstream (trec_eval -c)"
                )
            flat = np.empty(n_runs * nq, dtype=np.float64)
            flat[code] = block.get_column(cols.score).cast(pl.Float64).to_numpy()
            grid = flat.reshape(n_runs, nq)
            datasets.append(k)
            queries[k] = qids
            pos = 0
            scores[k] = {}
            for c in configs:
                s = len(seeds[c])
                scores[k][c] = grid[pos : pos + s]
                pos += s
        return cls(tuple(datasets), configs, seeds, queries, scores)

    @classmethod
    def from_arrays(cls, arrays: Mapping[Hashable, Any]) -> CrossedDesign:
        """Build from arrays: ``{config: (seeds, queries)}`` for one dataset, or
        ``{dataset: {config: (seeds, queries)}}``. Query and seed ids become 0..n-1."""
        if not isinstance(arrays, Mapping) or not arrays:
            raise ValueError("arrays must be a non-empty mapping config -> (seeds, queries) array, "
                             "or dataset -> {config -> array}")
        first = next(iter(arrays.values()))
        nested = arrays if isinstance(first, Mapping) else {_NO_DATASET: arrays}
        configs: tuple[Hashable, ...] | None = None
        shapes: dict[Hashable, int] = {}
        scores: dict[Hashable, dict[Hashable, np.ndarray]] = {}
        queries: dict[Hashable, tuple[int, ...]] = {}
        for k, per_config in nested.items():
            if not isinstance(per_config, Mapping):
                raise ValueError(f"arrays[{k!r}] must be a mapping config -> (seeds, queries) array")
            if configs is None:
                configs = tuple(per_config)
            elif tuple(per_config) != configs:
                raise ValueError(f"dataset {k!r} has configs {tuple(per_config)}, expected {configs} as in the first dataset")
            nq = None
            scores[k] = {}
            for c, arr in per_config.items():
                y = np.asarray(arr, dtype=np.float64)
                if y.ndim != 2:
                    raise ValueError(f"arrays for dataset {k!r}, config {c!r} must be 2-D (seeds, queries), got shape {y.shape}")
                if not np.isfinite(y).all():
                    raise ValueError(f"arrays for dataset {k!r}, config {c!r} contain NaN/inf")
                if nq is None:
                    nq = y.shape[1]
                elif y.shape[1] != nq:
                    raise ValueError(f"dataset {k!r}: config {c!r} has {y.shape[1]} queries, others {nq}")
                if shapes.setdefault(c, y.shape[0]) != y.shape[0]:
                    raise ValueError(f"config {c!r} has {y.shape[0]} seeds on dataset {k!r} but {shapes[c]} elsewhere")
                scores[k][c] = y
            queries[k] = tuple(range(nq or 0))
        assert configs is not None
        seeds = {c: tuple(range(shapes[c])) for c in configs}
        return cls(tuple(nested), configs, seeds, queries, scores)

    def to_table(self, columns: Columns | Mapping[str, str] | None = None) -> pl.DataFrame:
        """The long table (dataset, query, config, seed, score) this design represents."""
        cols = _columns(columns)
        frames = []
        for k in self.datasets:
            qids = list(self.queries[k])
            for c in self.configs:
                y = self.scores[k][c]
                S, Q = y.shape
                frames.append(pl.DataFrame({
                    cols.dataset: [k] * (S * Q),
                    cols.query: qids * S,
                    cols.config: [c] * (S * Q),
                    cols.seed: np.repeat(np.asarray(self.seeds[c]), Q),
                    cols.score: y.ravel(),
                }))
        return pl.concat(frames)

    def subset(self, dataset: Hashable) -> CrossedDesign:
        """The same design restricted to one dataset."""
        if dataset not in self.scores:
            raise ValueError(f"dataset {dataset!r} not in the table; valid: {list(self.datasets)}")
        return CrossedDesign((dataset,), self.configs, self.seeds, {dataset: self.queries[dataset]},
                             {dataset: self.scores[dataset]})


def as_design(data: pl.DataFrame | CrossedDesign, columns: Columns | Mapping[str, str] | None = None) -> CrossedDesign:
    if isinstance(data, CrossedDesign):
        return data
    return CrossedDesign.from_table(data, columns)
