"""The ``paper`` profile: the real study, faithful to the reproduction (official ``train_st.py``).

* Model: ``answerdotai/ModernBERT-base`` (or ``-large``) at a pinned revision, mean pooling, the
  checkpoint's own max sequence length (8,192 since the config change of 2024-12-19; recorded per trial).
  bf16 where the GPU supports it; flash attention (ModernBERT then unpads) when ``flash_attn`` is
  installed, else PyTorch sdpa.
* Training data: ``sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1``, config
  ``triplet-hard``, split ``train``; the subset exactly as the official script takes it
  (``train_test_split(test_size=1_000, seed=12)``, then the first 1,250,000 rows of the train part);
  "full" is the whole train part. Loaded as memory-mapped Arrow, so the 11.7M rows need not fit in RAM.
* Evaluation: mteb's own tasks (their metadata, splits, self-hit protocol and pinned dataset revisions),
  with MS MARCO's split always named and MLDR's English test split. FEVER and Climate-FEVER share one
  corpus, encoded once per model.

Every remote artifact goes through ``ablate.hub``: a pinned revision in the local hub cache (works with
``HF_HUB_OFFLINE=1``) or a local copy in the same layout. Multi-GPU: one worker process per GPU
(``ablate worker --gpus``); sentence-transformers' data parallelism would not enlarge the in-batch
negatives anyway, so the per-device batch is the negatives control and the paper's 8-GPU setting is
reproduced on one GPU by gradient accumulation (see ``studies/negatives-vs-updates.toml``).
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.beir import DatasetError
from ablate.hub import FetchError, HubArtifact, cached_head, data_files_of, snapshot_revision
from ablate.profile_base import EvalOptions, Profile, ProfileError, local_dataset_or_none
from ablate.train import TrainingConfig

TRAIN_DATA = "sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1"
# Pinned model revisions (current heads, after the 2024-12-19 change of max_position_embeddings to 8192).
MODEL_REVISIONS = {
    "answerdotai/ModernBERT-base": "8949b909ec900327062f0ebf497f51aef5e6f0c8",
    "answerdotai/ModernBERT-large": "45bb4654a4d5aaff24dd11d4781fa46d39bf8c13",
}
MODEL_ALIASES = {"base": "answerdotai/ModernBERT-base", "large": "answerdotai/ModernBERT-large"}


@dataclass(frozen=True)
class PaperTask:
    """One evaluation set of the study as mteb defines it, with the sizes the cost plan needs.

    Sizes: queries scored, corpus documents, mean tokens per query and per document (BEIR paper Table 1
    word counts x 1.3 tokens/word; MLDR: its paper's English statistics). ``corpus_group`` names a corpus
    several tasks search.
    """

    mteb_name: str
    split: str
    queries: int
    documents: int
    query_tokens: float
    document_tokens: float
    languages: tuple[str, ...] = ()
    corpus_group: str | None = None


PAPER_TASKS: dict[str, PaperTask] = {
    "NFCorpus": PaperTask("NFCorpus", "test", 323, 3_633, 4.3, 302.0),
    "SciFact": PaperTask("SciFact", "test", 300, 5_183, 16.1, 277.7),
    "TRECCOVID": PaperTask("TRECCOVID", "test", 50, 171_332, 13.8, 209.0),
    "FiQA2018": PaperTask("FiQA2018", "test", 648, 57_638, 14.0, 172.0),
    "ArguAna": PaperTask("ArguAna", "test", 1_406, 8_674, 250.9, 216.8),
    "SCIDOCS": PaperTask("SCIDOCS", "test", 1_000, 25_657, 12.2, 229.1),
    "FEVER": PaperTask("FEVER", "test", 6_666, 5_416_568, 10.6, 110.2, corpus_group="fever-wikipedia"),
    "ClimateFEVER": PaperTask("ClimateFEVER", "test", 1_535, 5_416_593, 26.2, 110.2,
                              corpus_group="fever-wikipedia"),
    "MLDR": PaperTask("MultiLongDocRetrieval", "test", 800, 200_000, 15.0, 3_308.0, languages=("eng",)),
    "MSMARCO:dev": PaperTask("MSMARCO", "dev", 6_980, 8_841_823, 7.7, 73.6, corpus_group="msmarco-passages"),
    "MSMARCO:test": PaperTask("MSMARCO", "test", 43, 8_841_823, 7.7, 73.6, corpus_group="msmarco-passages"),
}
# Names whose split must be spelled out because the default would silently pick a different test set.
AMBIGUOUS = {"MSMARCO": "name the split: MSMARCO:dev (6,980 queries) or MSMARCO:test (43 queries, TREC-DL 2019)"}


def paper_task(name: str) -> PaperTask:
    """The task a spec's dataset name means on the paper profile (``Name`` or ``Name:split``)."""
    if name in PAPER_TASKS:
        return PAPER_TASKS[name]
    if name in AMBIGUOUS:
        raise DatasetError(f"{name}: {AMBIGUOUS[name]}")
    task_name, _, split = name.partition(":")
    import mteb

    try:
        meta = mteb.get_task(task_name).metadata
    except KeyError:
        known = ", ".join(PAPER_TASKS)
        raise DatasetError(f"{name}: not an mteb task; the study's tasks are {known} (or any mteb retrieval "
                           "task name, or a BEIR-layout directory)") from None
    if meta.type != "Retrieval":
        raise DatasetError(f"{name}: mteb task of type {meta.type}; only retrieval tasks can be scored")
    if not split:
        if len(meta.eval_splits) != 1:
            raise DatasetError(f"{name}: name the split, e.g. {task_name}:{meta.eval_splits[0]} "
                               f"(mteb has {', '.join(meta.eval_splits)})")
        split = meta.eval_splits[0]
    return PaperTask(task_name, split, 0, 0, 0.0, 0.0)


def load_triplets(directory: Path, config: str):
    """The ``train`` split of ``config`` from a local copy, as memory-mapped Arrow.

    Accepted layouts: a copy of the hub repository (the files its dataset card declares for the config,
    else ``<config>/*.parquet``), or a ``datasets`` ``save_to_disk`` directory (a Dataset, or a DatasetDict
    with a ``train`` split) at ``directory`` or ``directory/<config>``.
    """
    import datasets

    for saved in (directory / config, directory):
        if (saved / "state.json").is_file() or (saved / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(saved))
            if isinstance(loaded, datasets.DatasetDict):
                if "train" not in loaded:
                    raise ProfileError(f"paper profile: {saved}: saved DatasetDict has no 'train' split "
                                       f"(it has {', '.join(loaded)})")
                loaded = loaded["train"]
            return loaded
    card = directory / "README.md"
    declared = data_files_of(card, (config,), split="train") if card.is_file() else []
    patterns = [str(directory / f) for f in declared] or [str(directory / config / "*.parquet")]
    if not any(glob.glob(pattern, recursive=True) for pattern in patterns):
        raise ProfileError(f"paper profile: {directory}: no parquet files for config {config!r} "
                           f"(looked for {', '.join(patterns)}) and no save_to_disk copy")
    return datasets.load_dataset("parquet", data_files={"train": patterns}, split="train")


def official_subset(full, held_out_rows: int, split_seed: int, subset_rows: int | None):
    """The reproduction's training rows: hold ``held_out_rows`` out with ``split_seed``, keep the first
    ``subset_rows`` of the rest (all of it when None). Exactly ``train_st.py``'s two calls."""
    parts = full.train_test_split(test_size=held_out_rows, seed=split_seed)
    train = parts["train"]
    return train if subset_rows is None else train.select(range(subset_rows))


def row_indices_digest(dataset) -> str:
    """SHA-256 of the source row indices a selected dataset holds (identifies the exact subset)."""
    import numpy as np

    if dataset._indices is None:  # no selection: rows 0..n-1
        indices = np.arange(len(dataset), dtype=np.uint64)
    else:
        indices = dataset._indices.column(0).to_numpy().astype(np.uint64)
    return hashlib.sha256(indices.tobytes()).hexdigest()


def default_attn_implementation() -> str:
    """flash_attention_2 when its package is installed and a GPU is there (ModernBERT then unpads), else sdpa."""
    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


@dataclass
class PaperProfile(Profile):
    """The real study: ModernBERT + MS MARCO triplet-hard + mteb's BEIR/MLDR/MS MARCO tasks.

    ``model``, ``train_data`` take hub ids or local directories in the same layout; ``eval_data`` is a
    directory holding local copies of the evaluation datasets as ``<eval_data>/<hub repo id>`` (e.g.
    ``mteb/scifact``). Revisions: the model's is pinned (``MODEL_REVISIONS``); the training data's is
    resolved to a commit when first fetched and recorded with the study, so every worker uses that commit;
    mteb pins each evaluation dataset.
    """

    model: str = field(default_factory=lambda: os.environ.get("ABLATE_PAPER_MODEL", "answerdotai/ModernBERT-base"))
    model_revision: str = ""
    train_data: str = field(default_factory=lambda: os.environ.get("ABLATE_PAPER_DATA", TRAIN_DATA))
    train_data_revision: str = field(default_factory=lambda: os.environ.get("ABLATE_PAPER_DATA_REVISION", ""))
    train_config: str = "triplet-hard"
    subset_rows: int = 1_250_000
    held_out_rows: int = 1_000
    split_seed: int = 12
    eval_data: str = field(default_factory=lambda: os.environ.get("ABLATE_PAPER_EVAL_DATA", ""))
    attn_implementation: str = "auto"
    eval_batch_size: int = 128
    eval_precision: str = "fp32"

    name = "paper"
    description = "ModernBERT + MS MARCO triplet-hard (1.25M subset) + mteb BEIR/MLDR tasks (hub or local copies, GPU)"

    def __post_init__(self) -> None:
        if self.eval_precision not in ("fp32", "bf16"):
            raise ProfileError(f"paper profile: eval_precision {self.eval_precision!r}; allowed: fp32 (as the "
                               "official evaluation), bf16")
        if self.attn_implementation not in ("auto", "sdpa", "flash_attention_2", "eager"):
            raise ProfileError(f"paper profile: attn_implementation {self.attn_implementation!r}; allowed: auto, "
                               "sdpa, flash_attention_2, eager")
        self.model = MODEL_ALIASES.get(self.model, self.model)
        if not self.model_revision and not _is_local(self.model):
            self.model_revision = MODEL_REVISIONS.get(self.model, "")
        self._data_record: dict[str, Any] = {}

    # --- artifacts -------------------------------------------------------------------------------
    def model_artifact(self) -> HubArtifact:
        return HubArtifact(self.model, "model", self.model_revision or None, purpose="base model",
                           patterns=("*.json", "*.safetensors", "*.txt"),
                           local=self.model if _is_local(self.model) else None)

    def train_artifact(self) -> HubArtifact:
        return HubArtifact(self.train_data, "dataset", self.train_data_revision or None, purpose="training data",
                           configs=(self.train_config,),
                           local=self.train_data if _is_local(self.train_data) else None)

    def eval_artifact(self, task: PaperTask, dataset: dict[str, str]) -> HubArtifact:
        local = Path(self.eval_data) / dataset["path"] if self.eval_data else None
        if local is not None and not local.is_dir():
            raise ProfileError(f"paper profile: eval_data {self.eval_data}: no local copy of {task.mteb_name} at "
                               f"{local} (expected the hub layout of {dataset['path']})")
        subsets = _hf_subsets(task)
        configs = tuple(f"{s}-{part}" for s in subsets for part in ("corpus", "queries", "qrels")) if subsets else ()
        return HubArtifact(dataset["path"], "dataset", dataset.get("revision"),
                           purpose=f"evaluation set {task.mteb_name}", configs=configs,
                           local=str(local) if local else None)

    def artifacts(self, dataset_names: list[str]) -> list[HubArtifact]:
        """Everything a study needs from the hub, in the order a run fetches it."""
        out = [self.model_artifact(), self.train_artifact()]
        seen = set()
        for name in dataset_names:
            if local_dataset_or_none(name) is not None:
                continue
            task = paper_task(name)
            artifact = self.eval_artifact(task, _mteb_dataset(task))
            if artifact.repo_id not in seen:
                seen.add(artifact.repo_id)
                out.append(artifact)
        return out

    def fetch(self, dataset_names: list[str], progress=None) -> list[tuple[str, str]]:
        """Download (or find in the cache) every artifact of a study and build the local Arrow copies
        (training data with the official split, every evaluation set), so a later run needs no network."""
        say = progress or (lambda text: None)
        fetched = self._fetch_artifacts(dataset_names, say)
        say("building the training data's Arrow copy and the official split")
        self.training_set("full")
        say("loading the evaluation sets")
        self.eval_tasks(dataset_names, EvalOptions(True, None))
        return [(artifact.label, str(path)) for artifact, path in fetched] + [
            ("training data revision", self.train_data_revision or "local copy")]

    # --- Profile interface -----------------------------------------------------------------------
    def prepare(self, dataset_names: list[str]) -> None:
        """Fetch everything (from the cache when offline), pin the training data's commit, and load every
        evaluation set once, so a missing file stops the run before any GPU time is spent."""
        self._fetch_artifacts(dataset_names, lambda text: None)
        self.eval_tasks(dataset_names, EvalOptions(True, None))

    def _fetch_artifacts(self, dataset_names: list[str], say) -> list[tuple[HubArtifact, Path]]:
        out = []
        for artifact in self.artifacts(dataset_names):
            say(f"fetching {artifact.label}")
            out.append((artifact, _fetched(artifact)))
        self._pin_train_revision(out[1][1])
        return out

    def resolve(self) -> None:
        if not self.train_data_revision and not _is_local(self.train_data):
            self._pin_train_revision(_fetched(self.train_artifact()))

    def base_model(self) -> str:
        return str(_fetched(self.model_artifact()))

    def training_set(self, train_set: str):
        directory = _fetched(self.train_artifact())
        self._pin_train_revision(directory)
        full = load_triplets(directory, self.train_config)
        if len(full) <= self.held_out_rows:
            raise ProfileError(f"paper profile: {self.train_data!r} has {len(full)} rows, not more than the "
                               f"{self.held_out_rows} held out by the official script")
        if train_set == "subset" and len(full) - self.held_out_rows < self.subset_rows:
            raise ProfileError(f"paper profile: {self.train_data!r} has {len(full) - self.held_out_rows} training "
                               f"rows, fewer than the {self.subset_rows} of the official subset")
        rows = official_subset(full, self.held_out_rows, self.split_seed,
                               self.subset_rows if train_set == "subset" else None)
        self._data_record = {"train_source_rows": len(full), "train_rows": len(rows),
                             "train_row_indices_sha256": row_indices_digest(rows)}
        return rows

    def eval_tasks(self, names, options):
        from ablate.evaluate import PreparedTask, hub_task, local_task

        out = []
        for name in names:
            dataset = local_dataset_or_none(name)
            if dataset is not None:
                out.append(PreparedTask(dataset.name, dataset.revision,
                                        local_task(dataset, options.ignore_identical_ids)))
                continue
            task_def = paper_task(name)
            mteb_dataset = _mteb_dataset(task_def)
            data_dir = _fetched(self.eval_artifact(task_def, mteb_dataset))
            task = hub_task(task_def.mteb_name, task_def.split, languages=list(task_def.languages) or None,
                            data_dir=str(data_dir), keep_self_hits=not options.ignore_identical_ids)
            try:
                task.load_data()
            except Exception as err:
                raise ProfileError(f"paper profile: cannot load {task_def.mteb_name} ({task_def.split}) from "
                                   f"{data_dir}: {type(err).__name__}: {_first_line(err)}") from None
            revision = snapshot_revision(data_dir) or ("local copy" if self.eval_data else "")
            out.append(PreparedTask(name, revision or str(mteb_dataset.get("revision", "")), task,
                                    split=task_def.split, corpus_group=task_def.corpus_group))
        return out

    def training_config(self, settings, n_examples):
        return TrainingConfig(
            per_device_batch=settings["per_device_batch"],
            learning_rate=settings["learning_rate"],
            gradient_accumulation=settings["gradient_accumulation"],
            mini_batch_size=settings["mini_batch_size"],
            # The official script sets no max_seq_length: the checkpoint's own limit applies (recorded).
            max_seq_length=settings.get("max_seq_length"),
            train_examples=n_examples,
            epochs=settings["epochs"],
            warmup_ratio=settings["warmup_ratio"],
            attn_implementation=self.resolved_attn_implementation(),
        )

    def eval_options(self, settings):
        return EvalOptions(settings["ignore_identical_ids"], settings.get("eval_max_seq_length"),
                           batch_size=self.eval_batch_size, precision=self.eval_precision)

    def expected_rows(self, train_set: str) -> int:
        """Training rows without loading anything (the full part from the dataset's known size)."""
        from ablate.profile_base import TRIPLET_HARD_ROWS

        return self.subset_rows if train_set == "subset" else TRIPLET_HARD_ROWS - self.held_out_rows

    def cost_basis(self):
        from ablate import cost
        from ablate.cost import CostBasis

        shape = cost.MODEL_SHAPES.get(self.model)
        if shape is None and _is_local(self.model) and (Path(self.model) / "config.json").is_file():
            shape = cost.shape_from_config(json.loads((Path(self.model) / "config.json").read_text()), self.model)
        if shape is None:
            raise ProfileError(f"paper profile: no size known for model {self.model!r}; use a local directory "
                               "with its config.json, or one of " + ", ".join(cost.MODEL_SHAPES))
        return CostBasis(shape=shape, tokens_per_triplet=cost.MSMARCO_TOKENS_PER_TRIPLET,
                         train_seq_len=cost.MSMARCO_ATTENTION_CONTEXT,
                         max_seq_len=shape.max_position,
                         train_rows={"subset": self.expected_rows("subset"), "full": self.expected_rows("full")},
                         eval_precision=self.eval_precision,
                         basis_note=f"training: CachedMNRL costs 4 forward passes per token; "
                                    f"{cost.MSMARCO_TOKENS_PER_TRIPLET:g} "
                                    "tokens per MS MARCO triplet (query ~10, passages ~80), unpadded; evaluation: "
                                    "one forward pass per query and document token, corpus truncated at the "
                                    "model's max length; sizes and mean lengths from BEIR/MLDR statistics")

    def eval_sets(self, names):
        from ablate.cost import EvalSet

        out = []
        for name in names:
            dataset = local_dataset_or_none(name)
            if dataset is not None:
                out.append(EvalSet(dataset.name, f"ablate-{dataset.name}", "test", name,
                                   len(dataset.judged_queries), len(dataset.corpus), 0.0, 0.0))
                continue
            task = paper_task(name)
            mteb_dataset = _mteb_dataset(task)
            artifact = self.eval_artifact(task, mteb_dataset)
            source = artifact.local or f"{artifact.repo_id}@{(artifact.revision or 'main')[:12]}"
            mteb_removes = bool(_mteb_ignores_identical_ids(task))
            out.append(EvalSet(name, task.mteb_name + (f" ({','.join(task.languages)})" if task.languages else ""),
                               task.split, source, task.queries, task.documents, task.query_tokens,
                               task.document_tokens, task.corpus_group,
                               self_hits=("removed (mteb)" if mteb_removes else "kept (mteb)")
                               + " unless ignore_identical_ids=false"))
        return out

    def run_description(self):
        model_rev = self.model_revision or "local copy"
        cached = None if self.train_data_revision or _is_local(self.train_data) else cached_head(self.train_data,
                                                                                                 "dataset")
        data_rev = self.train_data_revision or (
            f"branch head: {cached} in the local hub cache (recorded with the study at the first run)" if cached
            else "branch head, resolved to a commit at first fetch and recorded with the study")
        return {
            "model": f"{self.model} @ {model_rev}; mean pooling; max sequence length "
                     f"{_max_positions(self.model)} "
                     "(the checkpoint's own, recorded per trial)",
            "training data": f"{self.train_data} @ {data_rev}, config {self.train_config}, split train: "
                             f"train_test_split(test_size={self.held_out_rows:,}, seed={self.split_seed}), then the "
                             f"first {self.subset_rows:,} rows ('subset') or all {self.expected_rows('full'):,} "
                             "('full'); memory-mapped Arrow",
            "precision and attention": "bf16 on GPUs that support it, else fp32; " + (
                self.attn_implementation if self.attn_implementation != "auto"
                else "flash_attention_2 (unpadded) when flash_attn is installed, else sdpa"),
            "evaluation": f"{self.eval_precision}, sdpa attention, batch {self.eval_batch_size}"
                          + (" (as the official evaluation)" if self.eval_precision == "fp32" else ""),
            "devices": "one GPU per trial; several GPUs run several cells (ablate worker --gpus); per-device batch "
                       "sets the in-batch negatives",
        }

    def resolved_attn_implementation(self) -> str:
        return default_attn_implementation() if self.attn_implementation == "auto" else self.attn_implementation

    def describe(self) -> dict[str, Any]:
        return {"profile": self.name, "model": self.model, "model_revision": self.model_revision or "local",
                "train_data": self.train_data, "train_data_revision": self.train_data_revision or "unresolved",
                "train_config": self.train_config, "subset_rows": self.subset_rows,
                "held_out_rows": self.held_out_rows, "split_seed": self.split_seed}

    def provenance(self) -> dict[str, Any]:
        return {**self.describe(), **self._data_record,
                "attn_implementation": self.resolved_attn_implementation()}

    def _pin_train_revision(self, directory: Path) -> None:
        """Record the commit the training data came from, so every worker of the study uses the same one."""
        if self.train_data_revision or _is_local(self.train_data):
            return
        commit = snapshot_revision(directory)
        if commit:
            self.train_data_revision = commit


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [""])[0][:200]


def _is_local(name: str) -> bool:
    return Path(name).expanduser().is_dir() or name.startswith((".", "/", "~"))


def _fetched(artifact: HubArtifact) -> Path:
    try:
        return artifact.fetch()
    except FetchError as err:
        raise ProfileError(str(err)) from None


def _mteb_dataset(task: PaperTask) -> dict[str, str]:
    import mteb

    return dict(mteb.get_task(task.mteb_name).metadata.dataset)


def _max_positions(model: str) -> str:
    from ablate import cost

    shape = cost.MODEL_SHAPES.get(model)
    return f"{shape.max_position:,}" if shape else "from its config"


def _mteb_ignores_identical_ids(task: PaperTask) -> bool:
    import mteb

    return bool(getattr(mteb.get_task(task.mteb_name), "ignore_identical_ids", False))


def _hf_subsets(task: PaperTask) -> list[str]:
    """The mteb subsets a task evaluates (MLDR: ``en``); [] for single-subset tasks."""
    if not task.languages:
        return []
    import mteb

    return list(mteb.get_task(task.mteb_name, languages=list(task.languages)).hf_subsets)
