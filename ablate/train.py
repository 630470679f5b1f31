"""Training one bi-encoder: sentence-transformers' trainer with CachedMultipleNegativesRankingLoss.

This is the reproduction's recipe (official ``train_st.py``): one epoch over (anchor, positive, negative)
triplets, the ``NO_DUPLICATES`` batch sampler, warmup ratio 0.05 and linear decay. The trial's seed drives
data order and dropout. ``controls`` records the quantities that "batch size" confounds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable



@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what model a training run produces (with the seed)."""

    per_device_batch: int
    learning_rate: float
    gradient_accumulation: int = 1
    mini_batch_size: int = 32
    max_seq_length: int | None = 64
    train_examples: int = 8192
    epochs: int = 1
    warmup_ratio: float = 0.05
    devices: int = 1
    attn_implementation: str = "sdpa"


def controls(config: TrainingConfig) -> dict[str, float | int]:
    """The quantities "batch size" confounds, derived for one training configuration.

    With CachedMNRL each anchor is scored against every positive and hard negative of its per-device batch,
    so negatives per query = 2 * per_device_batch - 1; accumulation and extra devices add samples per update
    but no negatives.
    """
    samples_per_update = config.per_device_batch * config.gradient_accumulation * config.devices
    batches = math.ceil(config.train_examples / (config.per_device_batch * config.devices))
    updates = math.ceil(batches / config.gradient_accumulation) * config.epochs
    return {
        "per_device_batch": config.per_device_batch,
        "gradient_accumulation": config.gradient_accumulation,
        "devices": config.devices,
        "samples_per_update": samples_per_update,
        "optimizer_updates": updates,
        "negatives_per_query": 2 * config.per_device_batch - 1,
        "cached_mnrl_mini_batch": config.mini_batch_size,
        "learning_rate": config.learning_rate,
        "training_examples_seen": config.train_examples * config.epochs,
        "warmup_ratio": config.warmup_ratio,
        "max_seq_length_train": config.max_seq_length,
    }


ProgressFn = Callable[[int, int, float], None]  # (step, total_steps, seconds elapsed)


def load_encoder(base_model: str | Path, max_seq_length: int | None, attn_implementation: str = "sdpa"):
    """A SentenceTransformer (transformer + mean pooling) from a local directory.

    ``max_seq_length`` None keeps the checkpoint's own limit (as the official script does).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(str(base_model), max_seq_length=max_seq_length,
                              model_kwargs={"attn_implementation": attn_implementation})
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu" if not has_cuda() else None)


def prepare_for_evaluation(model, precision: str = "fp32") -> dict[str, str]:
    """Put a trained encoder in the state it is evaluated in; returns what to record.

    ``fp32`` is what the official evaluation gets (a freshly loaded SentenceTransformer); ``bf16`` casts the
    weights, about 15x faster on tensor cores at a small numeric cost shared by all arms. Flash attention
    only runs on fp16/bf16 and is unavailable in fp32, so evaluation always uses sdpa: the same attention,
    computed exactly.
    """
    import torch

    encoder = model[0].auto_model
    if getattr(encoder.config, "_attn_implementation", None) == "flash_attention_2":
        encoder.set_attn_implementation("sdpa")
    if precision == "bf16":
        model.to(torch.bfloat16)
    elif precision != "fp32":
        raise ValueError(f"evaluation precision must be 'fp32' or 'bf16', got {precision!r}")
    return {"attn_implementation_eval": str(getattr(encoder.config, "_attn_implementation", "unknown")),
            "eval_precision": precision}


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def training_precision() -> str:
    """bf16 mixed precision where the GPU supports it (as the official script), else fp32."""
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def train(
    base_model: str | Path,
    triplets,
    config: TrainingConfig,
    seed: int,
    output_dir: Path,
    progress: ProgressFn | None = None,
    checkpoint_every: int = 0,
):
    """Fine-tune ``base_model`` on ``triplets`` (a ``datasets.Dataset`` with anchor/positive/negative).

    Returns the trained SentenceTransformer. ``output_dir`` holds the trainer's scratch files. With
    ``checkpoint_every`` > 0 it also keeps the latest checkpoint (every that many optimizer steps, only the
    last one, so disk stays bounded), and a call whose ``output_dir`` already holds a readable checkpoint
    resumes from it: the trainer restores weights, optimizer, scheduler, RNG states and the position in the
    data order, so a resumed run ends with the same model as an uninterrupted one. The caller removes
    ``output_dir`` once the model is safe; until then it is what a retried trial resumes from.
    """
    import torch
    import transformers
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    transformers.set_seed(seed, deterministic=False)
    model = load_encoder(base_model, config.max_seq_length, config.attn_implementation)
    loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.per_device_batch,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        # transformers 5 takes the warmup *ratio* as a float warmup_steps (warmup_ratio is deprecated).
        warmup_steps=float(config.warmup_ratio),
        lr_scheduler_type="linear",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        seed=seed,
        data_seed=seed,
        bf16=training_precision() == "bf16",
        save_strategy="steps" if checkpoint_every else "no",
        **({"save_steps": checkpoint_every, "save_total_limit": 1} if checkpoint_every else {}),
        logging_steps=10,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    callbacks = [_progress_callback(progress)] if progress else []
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=triplets, loss=loss,
                                         callbacks=callbacks)
    for callback in list(trainer.callback_handler.callbacks):
        # The console printer and model-card widgets only add noise and hub look-ups to a trial.
        if type(callback).__name__ in ("PrinterCallback", "ProgressCallback") or "ModelCard" in type(callback).__name__:
            trainer.remove_callback(callback)
    trainer.train(resume_from_checkpoint=latest_checkpoint(output_dir) if checkpoint_every else None)
    return model


def checkpoint_dir(root: str | os.PathLike, study: str, cell_key: str, training_key: str) -> Path:
    """Where one cell's training checkpoints live under ``root`` (a directory all workers can read).

    Keyed by study and cell as well as the training run: two cells that share a training run (they differ
    only in evaluation settings) may train at the same moment on two workers and must not write into one
    directory, while a retried cell finds its own checkpoint wherever it runs.
    """
    digest = hashlib.sha256(json.dumps([study, cell_key, training_key]).encode()).hexdigest()[:24]
    return Path(root) / digest


def latest_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint under ``output_dir``, or None.

    The trainer writes ``trainer_state.json`` last, so a checkpoint cut short by a killed worker has none
    (or a truncated one) and is skipped in favour of the one before it.
    """
    candidates = []
    for path in Path(output_dir).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and _readable_state(path / "trainer_state.json"):
            candidates.append((int(step), str(path)))
    return max(candidates)[1] if candidates else None


def _readable_state(path: Path) -> bool:
    try:
        return "global_step" in json.loads(path.read_text())
    except (OSError, ValueError):
        return False


def _progress_callback(progress: ProgressFn):
    """A trainer callback forwarding steps to a plain function, keeping transformers out of the caller's code."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            progress(state.global_step, state.max_steps, time.perf_counter() - self.start)

    return _Callback()

