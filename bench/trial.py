"""Overhead of ablate around one `mini` trial, against the same work written as a plain script.

Both sides train the same tiny ModernBERT on the same 8,192 triplets with sentence-transformers'
trainer (CachedMNRL, NO_DUPLICATES, batch 16, warmup 5 %, linear decay) and evaluate the same four
datasets through mteb. ablate additionally schedules the cell through Optuna, checks per-query scores
against mteb's aggregates and stores everything in SQLite. Runs alternate (plain, ablate, plain, ablate,
...) and the ratio of medians is printed; target <= 1.10.

    python bench/trial.py [--repeats 2] [--examples 8192]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def plain_trial(base_model: str, world, examples: int, seed: int) -> float:
    """The baseline: sentence-transformers + mteb with nothing of ablate in the timed path."""
    import mteb
    import torch
    import transformers
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers, SentenceTransformerTrainingArguments)

    start = time.perf_counter()
    rows = world.train_triplets[:examples]
    train = Dataset.from_dict({"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows],
                               "negative": [r[2] for r in rows]})
    transformers.set_seed(seed)
    transformer = Transformer(base_model, max_seq_length=64, model_kwargs={"attn_implementation": "sdpa"})
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")],
                                device="cpu")
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, num_train_epochs=1, per_device_train_batch_size=16, learning_rate=1e-3,
            warmup_steps=0.05, lr_scheduler_type="linear", batch_sampler=BatchSamplers.NO_DUPLICATES, seed=seed,
            data_seed=seed, save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
            logging_steps=10)
        SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                   loss=CachedMultipleNegativesRankingLoss(model, mini_batch_size=16)).train()
    model.max_seq_length = 512
    for name, ds in world.datasets.items():
        class Task(AbsTaskRetrieval):
            metadata = TaskMetadata(
                name=f"plain-{name}", description="bench", reference=None, type="Retrieval", category="t2t",
                modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"], main_score="ndcg_at_10",
                dataset={"path": f"local/{name}", "revision": "1"}, date=None, domains=None, task_subtypes=None,
                license=None, annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="")

            def load_data(self, num_proc=None, **kwargs):
                self.dataset = {"default": {"test": {
                    "corpus": Dataset.from_dict({"id": list(ds.corpus), "title": [""] * len(ds.corpus),
                                                 "text": [d["text"] for d in ds.corpus.values()]}),
                    "queries": Dataset.from_dict({"id": list(ds.queries), "text": list(ds.queries.values())}),
                    "relevant_docs": ds.qrels, "top_ranked": None}}}
                self.data_loaded = True

        task = Task()
        task.ignore_identical_ids = True
        mteb.evaluate(model, task, cache=None, overwrite_strategy="always", show_progress_bar=False,
                      encode_kwargs={"batch_size": 128, "show_progress_bar": False})
    del torch
    return time.perf_counter() - start


def ablate_trial(profile, examples: int, seed: int, db: Path) -> float:
    from ablate.scheduler import run_study
    from ablate.spec import parse_spec
    from ablate.storage import open_storage

    spec = parse_spec({"name": f"bench{seed}", "question": "bench", "seeds": [seed],
                       "factors": {"per_device_batch": [16, 17]}, "fixed": {"learning_rate": 8e-5},
                       "datasets": {"mini": list(profile.world.datasets)}}, "bench")
    start = time.perf_counter()
    run_study(spec, profile, open_storage(f"sqlite:///{db}"), max_trials=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--examples", type=int, default=8192)
    args = parser.parse_args()

    from ablate._quiet import quiet_libraries
    from ablate.profiles import MiniProfile

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        profile = MiniProfile(subset_examples=args.examples, cache_dir=Path(tmp))
        base = str(profile.base_model())  # built once, outside both timings
        plain, ours = [], []
        for repeat in range(args.repeats):
            plain.append(plain_trial(base, profile.world, args.examples, seed=repeat))
            ours.append(ablate_trial(profile, args.examples, seed=repeat, db=Path(tmp) / f"b{repeat}.db"))
            print(f"repeat {repeat + 1}: plain {plain[-1]:.1f} s, ablate {ours[-1]:.1f} s", file=sys.stderr)
    ratio = statistics.median(ours) / statistics.median(plain)
    print(f"one mini trial ({args.examples} triplets, batch 16, 4 datasets), median of {args.repeats}:")
    print(f"  plain sentence-transformers + mteb script : {statistics.median(plain):7.1f} s")
    print(f"  ablate (Optuna cell, checks, SQLite store) : {statistics.median(ours):7.1f} s")
    print(f"  ratio ablate / plain                        : {ratio:7.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
