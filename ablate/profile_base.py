"""What every profile provides, and the facts profiles share (the official subset's size, default settings).

A profile turns a study's settings into a ``TrainingConfig`` plus evaluation options, so studies are
written once in the paper's units and run at any scale. ``ablate.profiles`` has the registry and the
``mini`` profile; ``ablate.paper`` the ``paper`` profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.beir import DatasetError, RetrievalDataset, read_beir
from ablate.train import TrainingConfig


# The official subset: 1.25M of ~11.7M rows of triplet-hard (train_st.py).
OFFICIAL_SUBSET_ROWS = 1_250_000
TRIPLET_HARD_ROWS = 11_662_655
SUBSET_SHARE = OFFICIAL_SUBSET_ROWS / TRIPLET_HARD_ROWS

DEFAULT_SETTINGS: dict[str, Any] = {
    "per_device_batch": 512,
    "gradient_accumulation": 1,
    "learning_rate": 8e-5,
    "mini_batch_size": 16,
    "warmup_ratio": 0.05,
    "epochs": 1,
    "train_set": "subset",
    "ignore_identical_ids": True,
}


class ProfileError(RuntimeError):
    """A profile that cannot provide its model or data here; the message says what to do."""


@dataclass(frozen=True)
class EvalOptions:
    ignore_identical_ids: bool
    max_seq_length: int | None
    batch_size: int = 128
    precision: str = "fp32"  # "fp32": as a freshly loaded SentenceTransformer (the official evaluation); "bf16"


class Profile:
    """Interface every profile implements; the trial runner needs nothing else."""

    name: str = ""
    description: str = ""

    def base_model(self) -> str | Path:
        raise NotImplementedError

    def prepare(self, dataset_names: list[str]) -> None:
        """Fail early, before anything is written, if the model or a dataset cannot be had here."""
        self.base_model()
        self.eval_tasks(dataset_names, EvalOptions(True, None))

    def fetch(self, dataset_names: list[str], progress=None) -> list[tuple[str, Path]]:
        """Put everything a study needs into the local caches (for a later offline run); what went where."""
        self.prepare(dataset_names)
        return []

    def resolve(self) -> None:
        """Pin whatever ``describe`` would otherwise leave open (e.g. a dataset's branch head); may fetch."""

    def training_set(self, train_set: str):
        """The training triplets as a ``datasets.Dataset`` (anchor, positive, negative columns in order)."""
        raise NotImplementedError

    def eval_tasks(self, names: list[str], options: EvalOptions) -> list:
        """``ablate.evaluate.PreparedTask`` for each dataset name (data loaded), see ``evaluate_tasks``."""
        raise NotImplementedError

    def training_config(self, settings: dict[str, Any], n_examples: int) -> TrainingConfig:
        raise NotImplementedError

    def eval_options(self, settings: dict[str, Any]) -> EvalOptions:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the study records and every worker must match (no network, nothing loaded)."""
        return {"profile": self.name}

    def provenance(self) -> dict[str, Any]:
        """What a trial records about where its model and data came from (after training_set was called)."""
        return self.describe()

    def cost_basis(self):
        """``ablate.cost.CostBasis``: how this profile's work turns into time (no network)."""
        raise NotImplementedError

    def eval_sets(self, names: list[str]):
        """``ablate.cost.EvalSet`` for each dataset name: what would be evaluated, with sizes (no network)."""
        raise NotImplementedError

    def run_description(self) -> dict[str, str]:
        """Model, training data and precision, one line each, for ``ablate run --dry-run``."""
        return {"profile": self.description}


def local_dataset_or_none(name: str) -> RetrievalDataset | None:
    path = Path(name).expanduser()
    if path.is_dir():
        return read_beir(path)
    if os.sep in name or name.startswith("."):
        raise DatasetError(f"{name}: not a directory (expected a BEIR-layout directory or a known dataset name)")
    return None
