"""One trial: train the cell's configuration with its seed, evaluate every dataset, return the scores.

Storing is the scheduler's job; this module knows nothing about databases.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.checkpoints import ModelStore, training_key
from ablate.evaluate import DatasetScores, check_against_mteb, evaluate_tasks
from ablate.profiles import DEFAULT_SETTINGS, Profile
from ablate.progress import Progress
from ablate.spec import Cell, StudySpec
from ablate.train import (
    checkpoint_dir,
    controls,
    device_name,
    latest_checkpoint,
    train,
    training_precision,
    prepare_for_evaluation,
)


@dataclass(frozen=True)
class TrialOutcome:
    scores: list[DatasetScores]
    settings: dict[str, Any]
    controls: dict[str, Any]
    timings: dict[str, float]
    training_key: str = ""
    trained: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)

    def macro(self, metric: str) -> float:
        """Macro-average of ``metric`` over datasets (each dataset's mean over its queries)."""
        means = [float(s.per_query[metric].mean()) for s in self.scores]
        return sum(means) / len(means)


def resolve_settings(spec: StudySpec, cell: Cell) -> dict[str, Any]:
    """Defaults (the reproduction's recipe), overridden by the spec's fixed settings and the cell's levels."""
    return {**DEFAULT_SETTINGS, **spec.settings_for(cell.arm)}


def run_trial(spec: StudySpec, cell: Cell, profile: Profile, progress: Progress | None = None,
              workdir: Path | None = None, models: ModelStore | None = None,
              resume_root: Path | None = None, checkpoint_every: int = 0) -> TrialOutcome:
    """Train (or reuse the stored model of the same training run), then evaluate every dataset.

    With a ``models`` store, a cell whose training configuration and seed match a stored model is only
    evaluated: evaluation-only factors never retrain. With ``resume_root`` and ``checkpoint_every``,
    training keeps its latest checkpoint under ``resume_root`` until the model is trained, and a retried
    cell resumes from it (on any worker that can read ``resume_root``).
    """
    from ablate._quiet import quiet_libraries

    quiet_libraries()
    progress = progress or Progress(quiet=True)
    settings = resolve_settings(spec, cell)
    started = time.perf_counter()
    triplets = profile.training_set(settings["train_set"])
    config = profile.training_config(settings, len(triplets))
    key = training_key(profile.describe(), config, cell.seed, settings["train_set"])
    if models is not None and models.get(key) is not None:
        progress.line(f"{progress.prefix}reusing trained model {key} (same training configuration and seed)")
        model = models.load(key)
        was_trained = False
    else:
        resumable = resume_root is not None and checkpoint_every > 0
        if resumable:
            scratch = checkpoint_dir(resume_root, f"{spec.name}@{profile.name}", cell.key, key)
            if (latest := latest_checkpoint(scratch)) is not None:
                progress.line(f"{progress.prefix}resuming training from {Path(latest).name}")
        else:
            scratch = Path(tempfile.mkdtemp(prefix="ablate-trial-", dir=workdir))
        try:
            model = train(profile.base_model(), triplets, config, cell.seed, scratch,
                          progress=lambda done, total, elapsed: progress.step("train", done, total, elapsed),
                          checkpoint_every=checkpoint_every if resumable else 0)
        finally:
            if not resumable:  # a resumable run keeps its checkpoint until the model is safe
                shutil.rmtree(scratch, ignore_errors=True)
        was_trained = True
        if models is not None:
            models.put(key, model, {"cell": cell.key, "study": spec.name})
        if resumable:
            shutil.rmtree(scratch, ignore_errors=True)
    trained = time.perf_counter()
    options = profile.eval_options(settings)
    progress.line(f"{progress.prefix}evaluating {len(spec.datasets_for(profile.name))} datasets")
    tasks = profile.eval_tasks(spec.datasets_for(profile.name), options)
    max_seq_length_model = int(model.max_seq_length)
    evaluation_state = prepare_for_evaluation(model, options.precision)
    scores = evaluate_tasks(model, tasks, max_seq_length=options.max_seq_length, batch_size=options.batch_size)
    for dataset_scores in scores:
        check_against_mteb(dataset_scores)
    finished = time.perf_counter()
    return TrialOutcome(
        scores=scores,
        settings=settings,
        controls={**controls(config), "learning_rate": settings["learning_rate"],
                  "learning_rate_effective": config.learning_rate,
                  "ignore_identical_ids": options.ignore_identical_ids,
                  "eval_max_seq_length": options.max_seq_length},
        timings={"train_s": trained - started, "eval_s": finished - trained, "total_s": finished - started},
        training_key=key,
        trained=was_trained,
        provenance={**profile.provenance(), "max_seq_length_model": max_seq_length_model,
                    "precision": training_precision(), "device": device_name(),
                    **evaluation_state,
                    "shared_corpus": {s.dataset: s.documents_reused for s in scores if s.documents_reused}},
    )
