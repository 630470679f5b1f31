"""Profiles set the scale a study runs at: which base model, training data and evaluation sets.

* ``mini`` (default): fully offline on CPU. The embedded world (``ablate.world``) and a tiny from-scratch
  ModernBERT trained on it. Trials take well under a minute on two cores.
* ``paper``: ``answerdotai/ModernBERT-base``, the MS MARCO ``triplet-hard`` triplets subset exactly as the
  official script takes it, and the BEIR tasks through mteb. Needs the hub (or local copies in the same
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
        return {"profile": self.name}


def _local_or_none(name: str) -> RetrievalDataset | None:
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

    def eval_tasks(self, names, options):
        from ablate.evaluate import _local_task

        out = []
        for name in names:
            dataset = _local_or_none(name) or self.world.datasets.get(name)
            if dataset is None:
                known = ", ".join(self.world.datasets)
                raise DatasetError(f"{name}: unknown mini dataset; allowed: {known}, or a BEIR-layout directory")
            out.append((dataset.name, dataset.revision, _local_task(dataset, options.ignore_identical_ids)))
        return out

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

    def describe(self):
        from ablate.model import built_model_hash

        return {"profile": self.name, "world_revision": self.world.revision, "world_seed": self.world_seed,
                "base_model_hash": built_model_hash(self.base_model()),
                "model_seed": self.model_seed, "learning_rate_scale": self.learning_rate_scale,
                "subset_examples": self.subset_examples, "full_examples": self.full_examples}


# mteb names for the datasets of the study; MLDR is mteb's MultiLongDocRetrieval, English subset.
PAPER_TASKS = {"MLDR": ("MultiLongDocRetrieval", ["eng"])}


@dataclass
class PaperProfile(Profile):
    """The real study: ModernBERT-base, MS MARCO triplet-hard (1.25M subset), BEIR via mteb.

    ``model`` and ``train_data`` accept hub ids or local directories in the same format (a saved
    transformers checkpoint; a directory with ``<config>/*.parquet`` files).
    """

    model: str = field(default_factory=lambda: os.environ.get("ABLATE_PAPER_MODEL", "answerdotai/ModernBERT-base"))
    train_data: str = field(default_factory=lambda: os.environ.get(
        "ABLATE_PAPER_DATA", "sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1"))
    train_config: str = "triplet-hard"
    subset_rows: int = OFFICIAL_SUBSET_ROWS
    held_out_rows: int = 1_000
    split_seed: int = 12

    name = "paper"
    description = "answerdotai/ModernBERT-base + MS MARCO triplet-hard 1.25M + BEIR via mteb (hub, GPU)"

    def base_model(self) -> str:
        local = Path(self.model).expanduser()
        if local.is_dir():
            return str(local)
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(self.model)
        except Exception as err:  # offline, no network, gated: all end the same way for the user
            raise ProfileError(
                f"paper profile: cannot get model {self.model!r} from the Hugging Face hub "
                f"({type(err).__name__}); download it where the hub is reachable and set ABLATE_PAPER_MODEL "
                f"to its local directory, or unset HF_HUB_OFFLINE") from None

    def training_set(self, train_set: str):
        import datasets

        local = Path(self.train_data).expanduser()
        try:
            if local.is_dir():
                full = datasets.load_dataset("parquet", data_dir=str(local / self.train_config), split="train")
            else:
                full = datasets.load_dataset(self.train_data, self.train_config, split="train")
        except Exception as err:
            raise ProfileError(
                f"paper profile: cannot load training data {self.train_data!r} (config {self.train_config!r}): "
                f"{type(err).__name__}; set ABLATE_PAPER_DATA to a local copy with {self.train_config}/*.parquet"
            ) from None
        if len(full) <= self.held_out_rows:
            raise ProfileError(f"paper profile: {self.train_data!r} has {len(full)} rows, not more than the "
                               f"{self.held_out_rows} held out by the official script")
        # Exactly as the official train_st.py: hold out 1,000 rows with seed 12, keep the first 1.25M.
        parts = full.train_test_split(test_size=self.held_out_rows, seed=self.split_seed)
        train = parts["train"]
        if train_set == "full":
            return train
        if len(train) < self.subset_rows:
            raise ProfileError(f"paper profile: {self.train_data!r} has {len(train)} training rows, fewer than "
                               f"the {self.subset_rows} of the official subset")
        return train.select(range(self.subset_rows))

    def eval_tasks(self, names, options):
        from ablate.evaluate import _local_task, hub_task

        out = []
        for name in names:
            dataset = _local_or_none(name)
            if dataset is not None:
                out.append((dataset.name, dataset.revision, _local_task(dataset, options.ignore_identical_ids)))
                continue
            task_name, languages = PAPER_TASKS.get(name, (name, None))
            try:
                task = hub_task(task_name, options.ignore_identical_ids, languages)
                task.load_data()
            except KeyError:
                raise DatasetError(f"{name}: not an mteb task name") from None
            except Exception as err:
                raise ProfileError(f"paper profile: cannot load mteb task {task_name!r} from the hub "
                                   f"({type(err).__name__}); run where the hub is reachable, or pass a local "
                                   "BEIR-layout directory instead") from None
            out.append((name, str(task.metadata.dataset.get("revision", "")), task))
        return out

    def training_config(self, settings, n_examples):
        return TrainingConfig(
            per_device_batch=settings["per_device_batch"],
            learning_rate=settings["learning_rate"],
            gradient_accumulation=settings["gradient_accumulation"],
            mini_batch_size=settings["mini_batch_size"],
            # The official script sets no max_seq_length: the checkpoint's own limit applies.
            max_seq_length=settings.get("max_seq_length"),
            train_examples=n_examples,
            epochs=settings["epochs"],
            warmup_ratio=settings["warmup_ratio"],
        )

    def eval_options(self, settings):
        return EvalOptions(settings["ignore_identical_ids"], settings.get("eval_max_seq_length"))

    def describe(self):
        return {"profile": self.name, "model": self.model, "train_data": self.train_data,
                "train_config": self.train_config, "subset_rows": self.subset_rows}


PROFILES = {"mini": MiniProfile, "paper": PaperProfile}


def get_profile(name: str, **options) -> Profile:
    try:
        return PROFILES[name](**options)
    except KeyError:
        raise ProfileError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}") from None
