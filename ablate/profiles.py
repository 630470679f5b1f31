"""Profiles set the scale a study runs at: which base model, training data and evaluation sets.

* ``mini`` (default): fully offline on CPU. The embedded world (``ablate.world``) and a tiny from-scratch
  ModernBERT trained on it. Trials take well under a minute on two cores.
* ``paper`` (``ablate.paper``): ModernBERT, the MS MARCO ``triplet-hard`` subset exactly as the official
  script takes it, and mteb's BEIR/MLDR tasks. Needs the hub or its cache (or local copies in the same
  formats) and, in practice, a GPU.

A profile turns a study's settings into a ``TrainingConfig`` plus evaluation options, so studies are
written once in the paper's units and run at either scale.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
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

    def resolve(self) -> None:
        """Pin whatever ``describe`` would otherwise leave open (e.g. a dataset's branch head); may fetch."""

    def training_set(self, train_set: str):
        """The training triplets as a ``datasets.Dataset`` (anchor, positive, negative columns in order)."""
        raise NotImplementedError

    def eval_tasks(self, names: list[str], options: EvalOptions) -> list[tuple[str, str, Any]]:
        """Prepared ``(name, revision, mteb task)`` triples, see ``ablate.evaluate.evaluate_tasks``."""
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
        """``ablate.plan.CostBasis``: how this profile's work turns into time (no network)."""
        raise NotImplementedError

    def eval_sets(self, names: list[str]):
        """``ablate.plan.EvalSet`` for each dataset name: what would be evaluated, with sizes (no network)."""
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


@dataclass
class MiniProfile(Profile):
    """Offline CPU scale: the embedded world and a tiny from-scratch ModernBERT."""

    world_seed: int = 0
    model_seed: int = 0
    cache_dir: Path = field(default_factory=lambda: Path(os.environ.get("ABLATE_CACHE", ".ablate")))
    # One standard "subset" epoch; "full" keeps the paper's subset-to-full ratio.
    subset_examples: int = 8192
    # A from-scratch encoder trained for a few hundred updates needs larger steps than a pretrained one;
    # every learning rate of a study is multiplied by this, so the paper's relative levels keep meaning.
    learning_rate_scale: float = 12.5
    max_seq_length: int = 64
    eval_max_seq_length: int = 512

    name = "mini"
    description = "embedded synthetic world + tiny from-scratch ModernBERT, offline on CPU"

    def __post_init__(self) -> None:
        # Nothing here comes from the hub; without this, saving and loading models makes hub look-ups
        # (model cards) that stall on a machine without network. Read by huggingface_hub at import.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")

    @functools.cached_property
    def world(self):
        from ablate.world import WorldSize, generate

        return generate(self.world_seed, WorldSize(train_triplets=self.full_examples))

    @property
    def full_examples(self) -> int:
        return round(self.subset_examples / SUBSET_SHARE)

    def base_model(self) -> Path:
        from ablate.model import tiny_modernbert_path

        return tiny_modernbert_path(self.cache_dir / "models", self.world, self.model_seed)

    def training_set(self, train_set: str):
        from datasets import Dataset

        n = self.subset_examples if train_set == "subset" else self.full_examples
        rows = self.world.train_triplets[:n]
        return Dataset.from_dict({"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows],
                                  "negative": [r[2] for r in rows]})

    def dataset(self, name: str) -> RetrievalDataset:
        """A world dataset by name, or a BEIR-layout directory."""
        dataset = local_dataset_or_none(name) or self.world.datasets.get(name)
        if dataset is None:
            known = ", ".join(self.world.datasets)
            raise DatasetError(f"{name}: unknown mini dataset; allowed: {known}, or a BEIR-layout directory")
        return dataset

    def eval_tasks(self, names, options):
        from ablate.evaluate import PreparedTask, local_task

        return [PreparedTask(dataset.name, dataset.revision, local_task(dataset, options.ignore_identical_ids))
                for dataset in map(self.dataset, names)]

    def training_config(self, settings, n_examples):
        return TrainingConfig(
            per_device_batch=settings["per_device_batch"],
            learning_rate=settings["learning_rate"] * self.learning_rate_scale,
            gradient_accumulation=settings["gradient_accumulation"],
            mini_batch_size=settings["mini_batch_size"],
            max_seq_length=settings.get("max_seq_length", self.max_seq_length),
            train_examples=n_examples,
            epochs=settings["epochs"],
            warmup_ratio=settings["warmup_ratio"],
        )

    def eval_options(self, settings):
        return EvalOptions(settings["ignore_identical_ids"],
                           settings.get("eval_max_seq_length", self.eval_max_seq_length))

    def cost_basis(self):
        from ablate.plan import CostBasis

        # Measured on the 2-core reference machine (median over the catalogue's mini trials).
        return CostBasis(shape=None, tokens_per_triplet=0.0, train_seq_len=self.max_seq_length,
                         max_seq_len=self.eval_max_seq_length,
                         train_rows={"subset": self.subset_examples, "full": self.full_examples},
                         seconds_per_triplet=0.003, seconds_per_evaluation=7.0,
                         basis_note="mini: rates measured on a 2-core CPU (about 3 ms per training triplet, "
                                    "7 s to evaluate one model on the four world sets)")

    def eval_sets(self, names):
        from ablate.plan import EvalSet

        return [EvalSet(dataset.name, f"ablate-{dataset.name}", "test", f"world@{dataset.revision}",
                        len(dataset.judged_queries), len(dataset.corpus), 0.0, 0.0,
                        self_hits="removed when ignore_identical_ids")
                for dataset in map(self.dataset, names)]

    def run_description(self):
        return {"model": f"tiny ModernBERT (hidden 64, 2 layers) built from world seed {self.world_seed}, "
                         f"model seed {self.model_seed}",
                "training data": f"the embedded world's triplets: subset {self.subset_examples:,} rows, "
                                 f"full {self.full_examples:,} rows",
                "learning rates": f"the study's x {self.learning_rate_scale:g} (from-scratch encoder)",
                "device": "CPU, fp32"}

    def describe(self):
        from ablate.model import built_model_hash

        return {"profile": self.name, "world_revision": self.world.revision, "world_seed": self.world_seed,
                "base_model_hash": built_model_hash(self.base_model()),
                "model_seed": self.model_seed, "learning_rate_scale": self.learning_rate_scale,
                "subset_examples": self.subset_examples, "full_examples": self.full_examples}


def _profiles() -> dict[str, type[Profile]]:
    from ablate.paper import PaperProfile  # imported late: it builds on the classes above

    return {"mini": MiniProfile, "paper": PaperProfile}


def __getattr__(name: str):
    # ``PROFILES`` and ``PaperProfile`` resolve on first use, so ablate.paper can import this module.
    if name == "PROFILES":
        return _profiles()
    if name == "PaperProfile":
        return _profiles()["paper"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_profile(name: str, **options) -> Profile:
    try:
        profile_class = _profiles()[name]
    except KeyError:
        raise ProfileError(f"unknown profile {name!r}; allowed: {', '.join(_profiles())}") from None
    return profile_class(**options)
