"""SQL and polars views over a study database, so nobody has to touch Optuna's tables.

``open_database(url)`` (also ``ablate.open``) reads every study in the database (or the ones named) into
a few flat views and answers SQL over them with polars:

==============  =========================================================================================
``studies``     one row per study: name, spec, profile, metric, question, trials by state
``trials``      one row per trial: study, trial_id, number, state, cell, arm, seed, every factor level,
                ``control_*``, ``time_*`` and ``setting_*`` columns, duration, config hash, worker, error,
                and any other scalar attribute the scheduler records (e.g. a failure kind)
``runs``        one row per COMPLETE trial x dataset: revision, split, query count, corpus documents encoded /
                reused from a task sharing the corpus, mteb's aggregate metrics
``scores``      one row per COMPLETE trial x dataset x query x metric (long): ``metric``, ``value``
``scores_wide`` the same with one column per metric (``ndcg_at_10``, ``mrr_at_10``, ``recall_at_100``)
``rankings``    one row per COMPLETE trial x dataset x query x retrieved doc: ``rank``, ``doc_id``, ``score``
==============  =========================================================================================

Only COMPLETE trials have scores (``ablate.results`` writes them before the trial completes), so a
running or failed trial never contributes a number. Per-query blobs are decoded once per database
object and kept; a view is built only when it is first used, and SQL builds only the views it names.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from functools import cached_property

import optuna
import polars as pl
from sqlalchemy import select

from ablate.results import scores_table
from ablate.storage import StorageError, open_storage, redact, redact_text, resolve_url

VIEWS = ("studies", "trials", "runs", "scores", "scores_wide", "rankings")
TRIAL_KEYS = ("study", "trial_id", "number", "arm", "seed")


class QueryError(ValueError):
    """A query that cannot be answered (unknown study, trial, dataset, view or column; bad SQL).

    ``str(err)`` is one line for the user and never contains a storage password.
    """


def config_hash(settings: dict | None) -> str | None:
    """Short hash of a trial's resolved training and evaluation settings (same settings, same hash)."""
    if not settings:
        return None
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _sql_name(key: str) -> str:
    """Column names that need no quoting in SQL."""
    return re.sub(r"\W", "_", key)


def _frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    """A frame from dict rows; columns whose values mix types across rows become strings, not errors."""
    if not rows:
        return pl.DataFrame(schema=schema)
    frame = pl.DataFrame(rows, infer_schema_length=None, strict=False)
    return frame.with_columns(pl.col(name).cast(dtype) for name, dtype in schema.items() if name in frame.columns)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame()
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError:  # the same column with types that do not unify across studies
        return pl.concat([f.with_columns(pl.all().cast(pl.String)) for f in frames], how="diagonal_relaxed")


_TRIAL_SCHEMA = {"study": pl.String, "trial_id": pl.Int64, "number": pl.Int64, "state": pl.String,
                 "cell": pl.String, "arm": pl.String, "seed": pl.Int64, "value": pl.Float64,
                 "started": pl.Datetime("us"), "completed": pl.Datetime("us"), "duration_s": pl.Float64,
                 "config_hash": pl.String, "worker": pl.String, "error": pl.String, "discarded": pl.String,
                 "ablate_version": pl.String}
# Trial attributes the trials view spreads into columns of their own (or leaves out: the traceback).
_STRUCTURED_ATTRS = {"cell", "controls", "timings", "settings", "datasets", "traceback"}
_STUDY_SCHEMA = {"study": pl.String, "spec": pl.String, "profile": pl.String, "metric": pl.String,
                 "question": pl.String, "factors": pl.String, "datasets": pl.String, "seeds": pl.String,
                 "trials": pl.Int64, "complete": pl.Int64, "running": pl.Int64, "waiting": pl.Int64,
                 "failed": pl.Int64, "pruned": pl.Int64, "ablate_version": pl.String}
_RUN_SCHEMA = {"trial_id": pl.Int64, "dataset": pl.String, "revision": pl.String, "n_queries": pl.Int64,
               "split": pl.String}
_WIDE_SCHEMA = {"trial_id": pl.Int64, "dataset": pl.String, "query_id": pl.String, "ndcg_at_10": pl.Float64,
                "mrr_at_10": pl.Float64, "recall_at_100": pl.Float64}
_RANK_SCHEMA = {"trial_id": pl.Int64, "dataset": pl.String, "query_id": pl.String, "rank": pl.Int64,
                "doc_id": pl.String, "score": pl.Float32}


class StudyDatabase:
    """The studies of one database as polars views; open with :func:`open_database`.

    Properties return ``LazyFrame``s (``.trials``, ``.runs``, ``.scores``, ``.scores_wide``,
    ``.rankings``) and ``.studies`` a ``DataFrame``; ``.sql(query)`` runs SQL over all of them. The data
    are read once, when a view is first used; call :meth:`refresh` to see trials finished since.
    """

    def __init__(self, url: str | None = None, study: str | list[str] | None = None):
        self.url = resolve_url(url)
        self.storage = open_storage(self.url, create=False)
        try:
            summaries = optuna.get_all_study_summaries(self.storage, include_best_trial=False)
        except Exception as err:  # the server went away between connecting and reading
            raise StorageError(f"cannot read storage {redact(self.url)}: {redact_text(str(err).splitlines()[0])}") \
                from None
        self.all_study_names = sorted(s.study_name for s in summaries)
        wanted = [study] if isinstance(study, str) else list(study or [])
        self.study_names = [self.resolve_study(name) for name in wanted] if wanted else list(self.all_study_names)
        self._studies: dict[str, optuna.Study] = {}
        self._trial_cache: dict[str, list] = {}

    def __repr__(self) -> str:
        return f"StudyDatabase({redact(self.url)!r}, studies={self.study_names!r})"

    # -- studies and trials -------------------------------------------------------------------------

    def resolve_study(self, name: str) -> str:
        """The full study name for ``name``: exact (``tiny@mini``), or a spec name unique across profiles."""
        if name in self.all_study_names:
            return name
        matches = [s for s in self.all_study_names if s.split("@", 1)[0] == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise QueryError(f"study {name!r} is ambiguous in {redact(self.url)}; use one of: {', '.join(matches)}")
        known = ", ".join(self.all_study_names) or "none"
        raise QueryError(f"no study {name!r} in {redact(self.url)}; studies: {known}")

    def study(self, name: str) -> optuna.Study:
        name = self.resolve_study(name)
        if name not in self._studies:
            self._studies[name] = optuna.load_study(study_name=name, storage=self.storage)
        return self._studies[name]

    def frozen_trials(self, name: str) -> list[optuna.trial.FrozenTrial]:
        """Every trial of a study, read once (``refresh`` reads again)."""
        name = self.resolve_study(name)
        if name not in self._trial_cache:
            self._trial_cache[name] = self.study(name).get_trials(deepcopy=False)
        return self._trial_cache[name]

    def factors(self, name: str) -> list[str]:
        return list(self.study(name).user_attrs.get("spec", {}).get("factors", {}))

    def refresh(self) -> "StudyDatabase":
        """Forget everything read so far; the next use of a view reads the database again."""
        for key in ("_trials_df", "_runs_df", "_wide_df", "_rankings_df", "studies"):
            self.__dict__.pop(key, None)
        self._studies.clear()
        self._trial_cache.clear()
        return self

    # -- views --------------------------------------------------------------------------------------

    @cached_property
    def studies(self) -> pl.DataFrame:
        rows = []
        for name in self.study_names:
            attrs = self.study(name).user_attrs
            spec = attrs.get("spec", {})
            states = [t.state.name for t in self.frozen_trials(name)]
            rows.append({
                "study": name, "spec": spec.get("name"), "profile": attrs.get("profile", {}).get("profile"),
                "metric": attrs.get("metric"), "question": spec.get("question"),
                "factors": ", ".join(spec.get("factors", {})),
                "datasets": ", ".join(_dataset_names(spec, attrs.get("profile", {}).get("profile"))),
                "seeds": ", ".join(map(str, spec.get("seeds", []))), "trials": len(states),
                **{key: states.count(key.upper()) for key in ("complete", "running", "waiting", "failed")},
                "pruned": states.count("PRUNED"), "ablate_version": attrs.get("ablate_version"),
            })
        return _frame(rows, _STUDY_SCHEMA)

    @property
    def trials(self) -> pl.LazyFrame:
        return self._trials_df.lazy()

    @property
    def runs(self) -> pl.LazyFrame:
        return self._with_trial_keys(self._runs_df.lazy())

    @property
    def scores_wide(self) -> pl.LazyFrame:
        return self._with_trial_keys(self._wide_df.lazy())

    @property
    def scores(self) -> pl.LazyFrame:
        metrics = [c for c in self._wide_df.columns if c not in ("trial_id", "dataset", "query_id")]
        long = self._wide_df.lazy().unpivot(on=metrics, index=["trial_id", "dataset", "query_id"],
                                            variable_name="metric", value_name="value")
        return self._with_trial_keys(long)

    @property
    def rankings(self) -> pl.LazyFrame:
        return self._with_trial_keys(self._rankings_df.lazy())

    def view(self, name: str) -> pl.LazyFrame:
        if name not in VIEWS:
            raise QueryError(f"unknown view {name!r}; views: {', '.join(VIEWS)}")
        value = getattr(self, name)
        return value.lazy() if isinstance(value, pl.DataFrame) else value

    def sql(self, query: str, eager: bool = True) -> pl.DataFrame | pl.LazyFrame:
        """Run SQL over the views (only the ones the query names are built); errors become QueryError."""
        named = [v for v in VIEWS if re.search(rf"\b{v}\b", query, flags=re.IGNORECASE)]
        context = pl.SQLContext({name: self.view(name) for name in named})
        try:
            result = context.execute(query, eager=False)
            return result.collect() if eager else result
        except pl.exceptions.PolarsError as err:
            raise QueryError(_polars_message(err)) from None

    # -- building -----------------------------------------------------------------------------------

    def _trial_keys(self) -> pl.DataFrame:
        """trial_id -> study, number, cell, arm, seed and factor levels: what every per-query view carries."""
        factor_cols = [c for name in self.study_names for c in self.factors(name)]
        keep = list(TRIAL_KEYS) + [c for c in dict.fromkeys(factor_cols) if c in self._trials_df.columns]
        return self._trials_df.select(keep)

    def _with_trial_keys(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return self._trial_keys().lazy().join(frame, on="trial_id", how="inner")

    def complete_trial_ids(self) -> list[int]:
        return [t._trial_id for name in self.study_names for t in self.frozen_trials(name)
                if t.state == optuna.trial.TrialState.COMPLETE]

    @cached_property
    def _trials_df(self) -> pl.DataFrame:
        frames = []
        for name in self.study_names:
            factors = self.factors(name)
            rows = []
            for t in self.frozen_trials(name):
                attrs = t.user_attrs
                cell = json.loads(attrs["cell"]) if attrs.get("cell") else {}
                duration = ((t.datetime_complete - t.datetime_start).total_seconds()
                            if t.datetime_complete and t.datetime_start else None)
                row = {"study": name, "trial_id": t._trial_id, "number": t.number, "state": t.state.name,
                       "cell": attrs.get("cell"), "arm": attrs.get("arm"), "seed": attrs.get("seed"),
                       "value": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
                       "started": t.datetime_start, "completed": t.datetime_complete, "duration_s": duration,
                       "config_hash": config_hash(attrs.get("settings")), "worker": attrs.get("worker"),
                       "error": attrs.get("error"), "discarded": attrs.get("discarded"),
                       "ablate_version": attrs.get("ablate_version")}
                row.update({f: cell.get(f) for f in factors})
                # Any other scalar attribute the scheduler records (e.g. failure kind, reused model key).
                row.update({_sql_name(k): v for k, v in attrs.items() if k not in _STRUCTURED_ATTRS
                            and _sql_name(k) not in row and isinstance(v, (str, int, float, bool))})
                for prefix, key in (("control", "controls"), ("time", "timings"), ("setting", "settings")):
                    row.update({_sql_name(f"{prefix}_{k}"): v for k, v in (attrs.get(key) or {}).items()})
                rows.append(row)
            frames.append(_frame(rows, _TRIAL_SCHEMA))
        return _concat(frames) if frames else pl.DataFrame(schema=_TRIAL_SCHEMA)

    def _blob_rows(self, *columns):
        ids = self.complete_trial_ids()
        with self.storage.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                query = select(scores_table.c.trial_id, scores_table.c.dataset, *columns).where(
                    scores_table.c.trial_id.in_(chunk)).order_by(scores_table.c.trial_id, scores_table.c.dataset)
                yield from conn.execute(query)

    @cached_property
    def _runs_df(self) -> pl.DataFrame:
        rows = []
        for row in self._blob_rows(scores_table.c.revision, scores_table.c.n_queries, scores_table.c.summary):
            summary = json.loads(row.summary or "{}")
            rows.append({"trial_id": row.trial_id, "dataset": row.dataset, "revision": row.revision,
                         "n_queries": row.n_queries, "split": summary.get("split", "test"),
                         "ignore_identical_ids": summary.get("ignore_identical_ids"),
                         "documents_encoded": summary.get("documents_encoded"),
                         "documents_reused": summary.get("documents_reused"),
                         **{f"mteb_{k}": v for k, v in (summary.get("mteb") or {}).items()}})
        return _frame(rows, _RUN_SCHEMA).sort("trial_id", "dataset") if rows else pl.DataFrame(schema=_RUN_SCHEMA)

    @cached_property
    def _wide_df(self) -> pl.DataFrame:
        frames = [pl.read_parquet(io.BytesIO(row.per_query)).with_columns(
            pl.lit(row.trial_id, pl.Int64).alias("trial_id"), pl.lit(row.dataset).alias("dataset"))
            for row in self._blob_rows(scores_table.c.per_query)]
        if not frames:
            return pl.DataFrame(schema=_WIDE_SCHEMA)
        wide = pl.concat(frames, how="diagonal_relaxed")
        return wide.select("trial_id", "dataset", "query_id", pl.exclude("trial_id", "dataset", "query_id"))

    @cached_property
    def _rankings_df(self) -> pl.DataFrame:
        frames = [_explode_ranked(row.ranked, row.trial_id, row.dataset)
                  for row in self._blob_rows(scores_table.c.ranked)]
        return pl.concat(frames) if frames else pl.DataFrame(schema=_RANK_SCHEMA)

    def ranked(self, trial_id: int, dataset: str) -> pl.DataFrame:
        """One stored ranking (trial_id, dataset, query_id, rank, doc_id, score) without building ``rankings``.

        Exports read runs one at a time this way, so a large study never sits in memory at once.
        """
        with self.storage.engine.connect() as conn:
            blob = conn.execute(select(scores_table.c.ranked).where(
                (scores_table.c.trial_id == trial_id) & (scores_table.c.dataset == dataset))).scalar()
        if blob is None:
            raise QueryError(f"no stored ranking for trial_id {trial_id} on {dataset!r}")
        return _explode_ranked(blob, trial_id, dataset)

    # -- lookups used by status, export and compare -------------------------------------------------

    def trial(self, study: str, number: int | str) -> optuna.trial.FrozenTrial:
        """A trial of ``study`` by its number (as shown in ``trials.number``)."""
        name = self.resolve_study(study)
        try:
            wanted = int(number)
        except (TypeError, ValueError):
            raise QueryError(f"trial {number!r}: expected a trial number of study {name!r}") from None
        for t in self.frozen_trials(name):
            if t.number == wanted:
                return t
        numbers = [t.number for t in self.frozen_trials(name)]
        shown = f"{min(numbers)}..{max(numbers)}" if numbers else "none"
        raise QueryError(f"no trial {wanted} in study {name!r}; trial numbers: {shown}")


def _explode_ranked(blob: bytes, trial_id: int, dataset: str) -> pl.DataFrame:
    """A stored top-k blob (one row per query with lists) as one row per (query, rank)."""
    ranked = pl.read_parquet(io.BytesIO(blob))
    return (ranked.with_columns(pl.lit(trial_id, pl.Int64).alias("trial_id"), pl.lit(dataset).alias("dataset"),
                                pl.int_ranges(1, pl.col("doc_ids").list.len() + 1).alias("rank"))
            .explode("rank", "doc_ids", "scores").drop_nulls("doc_ids")
            .rename({"doc_ids": "doc_id", "scores": "score"}).select(list(_RANK_SCHEMA)).cast(_RANK_SCHEMA))


def _dataset_names(spec: dict, profile: str | None) -> list[str]:
    names = spec.get("datasets", {}).get(profile or "", [])
    return [re.split(r"[\\/]", n.rstrip("/\\"))[-1] for n in names]


def _polars_message(err: Exception) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, pl.exceptions.ColumnNotFoundError):
        valid = re.search(r"valid columns: (\[.*?\])", text)
        first = first if "valid columns" in first else first + (f"; valid columns: {valid.group(1)}" if valid else "")
        return redact_text(f"unknown column: {first}")
    if "relation" in first and "not found" in first:
        return redact_text(f"SQL error: {first}; views: {', '.join(VIEWS)}")
    return redact_text(f"SQL error: {first}")


def open_database(url: str | None = None, study: str | list[str] | None = None) -> StudyDatabase:
    """Open the study database at ``url`` (default ``$ABLATE_STORAGE`` or ``sqlite:///ablate.db``).

    ``study`` restricts the views to one study or a list (full ``spec@profile`` names, or a spec name
    that is unique in the database). Raises ``StorageError`` if the database cannot be opened and
    ``QueryError`` for an unknown study.
    """
    return StudyDatabase(url, study)
