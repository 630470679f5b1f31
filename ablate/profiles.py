"""Profiles set the scale a study runs at: which base model, training data and evaluation sets.

* ``mini`` (default): fully offline on CPU. The embedded world (``ablate.world``) and a tiny from-scratch
  ModernBERT trained on it. Trials take well under a minute on two cores.
* ``paper`` (``ablate.paper``): ModernBERT, the MS MARCO ``triplet-hard`` subset exactly as the official
  script takes it, and mteb's BEIR/MLDR tasks. Needs the hub or its cache (or local copies in the same
  formats) and, in practice, a GPU.

The interface and shared facts are in ``ablate.profile_base`` (re-exported here).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from ablate.beir import DatasetError, RetrievalDataset
from ablate.paper import PaperProfile
from ablate.profile_base import (
    DEFAULT_SETTINGS,
    OFFICIAL_SUBSET_ROWS,
    SUBSET_SHARE,
    TRIPLET_HARD_ROWS,
    EvalOptions,
    Profile,
    ProfileError,
    local_dataset_or_none,
)
from ablate.train import TrainingConfig

__all__ = ["DEFAULT_SETTINGS", "OFFICIAL_SUBSET_ROWS", "SUBSET_SHARE", "TRIPLET_HARD_ROWS", "EvalOptions",
           "MiniProfile", "PaperProfile", "PROFILES", "Profile", "ProfileError", "get_profile",
           "local_dataset_or_none"]


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
        from ablate.cost import CostBasis

        # Measured on the 2-core reference machine (median over the catalogue's mini trials).
        return CostBasis(shape=None, tokens_per_triplet=0.0, train_seq_len=self.max_seq_length,
                         max_seq_len=self.eval_max_seq_length,
                         train_rows={"subset": self.subset_examples, "full": self.full_examples},
                         seconds_per_triplet=0.003, seconds_per_evaluation=7.0,
                         basis_note="mini: rates measured on a 2-core CPU (about 3 ms per training triplet, "
                                    "7 s to evaluate one model on the four world sets)")

    def eval_sets(self, names):
        from ablate.cost import EvalSet

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


PROFILES: dict[str, type[Profile]] = {"mini": MiniProfile, "paper": PaperProfile}


def get_profile(name: str, **options) -> Profile:
    try:
        profile_class = PROFILES[name]
    except KeyError:
        raise ProfileError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}") from None
    return profile_class(**options)
