"""Training and corpus-encoding throughput of a ModernBERT bi-encoder, with model FLOP utilisation.

Training is measured the way the study trains: sentence-transformers' CachedMultipleNegativesRankingLoss
over (query, positive, hard negative) triplets, a real backward pass, gradient clipping at 1.0 and an
AdamW step (fused on CUDA, as the HF trainer's default ``adamw_torch_fused``), in a plain loop so that
nothing but that work is timed. Tokenization (the trainer's collator) is timed separately. Each per-device
batch gets ``--warmup-steps`` untimed steps, then ``--steps`` timed ones (fewer, but at least 3, once they
have taken ``--time-budget`` seconds); the median is reported (single steps are occasionally several times
slower). The first batch size is the baseline: every other one prints its triples/s ratio to it. Encoding
runs ``model.encode`` over chunks of ``--encode-batch`` passages, as mteb does, and is compared with
training's tokens/s (CachedMNRL spends 4 forward-equivalents per token, encoding 1).

On a CPU that other processes keep busy, torch's OpenMP threads stall each other (single forwards were
measured 10-30x slower on 2 shared cores), so the script then uses one thread and says so.

Utilisation = model FLOPs (``ablate.cost.training_flops`` / ``encoding_flops`` of the non-padding tokens
actually fed) / seconds / peak. The peak is ``--peak-tflops``, or ``--gpu``'s dense bf16 peak, or on CUDA
the GPU recognised from the device name; on CPU it is n/a unless ``--peak-tflops`` is given.

``tiny`` is the ``mini`` profile's from-scratch shape (hidden 64, 2 layers); ``modernbert-base`` and
``modernbert-large`` have the released checkpoints' exact shapes (including the 50,368-row embedding) but
random weights and a WordPiece tokenizer learned from the generated text, so nothing is downloaded. Weight
values do not change the work a forward or backward pass does, so random init measures the same
throughput; what matters is the token count per text, which the generated text controls (one word is one
token; defaults give ~10-token queries and ~80-token passages like MS MARCO) and which is counted exactly.
A path to a local HF model directory (or saved sentence-transformers model) is used as it is.

    python bench/train_throughput.py                                          # tiny on CPU, < 1 min
    python bench/train_throughput.py --model modernbert-base --batch 16 512 --gpu H200 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from ablate.cost import (  # noqa: E402
    GPU,
    GPUS,
    ModelShape,
    attention_context,
    encoding_flops,
    get_gpu,
    shape_from_config,
    training_flops,
)

# The released checkpoints' shapes (config.json); heads do not change parameters or FLOPs but the kernels.
RELEASED = {
    "modernbert-base": dict(hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12),
    "modernbert-large": dict(hidden_size=1024, intermediate_size=2624, num_hidden_layers=28, num_attention_heads=16),
}
RELEASED_VOCAB = 50368
# Lexicon sizes that the generated tokenizers keep whole (one word = one token): the tiny model's
# 2,048-entry vocabulary keeps about 1,500 whole words, the 8,192-entry one built for the released shapes
# keeps them all. (A local model's own tokenizer may split the words; its tokens are counted as they are.)
LEXICON_WORDS = {"tiny": 1200, "released": 3000}
GENERATED_VOCAB = 8192
MIN_TIMED_STEPS = 3


# ----------------------------------------------------------------------------------------------- text

def lexicon(seed: int, size: int) -> list[str]:
    """``size`` distinct pronounceable lower-case words, the same for the same seed."""
    rng = random.Random(seed)
    onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "th", "br", "st"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    codas = ["", "", "n", "r", "s", "l"]
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = rng.choice((1, 2, 2, 3))
        words["".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables))] = None
    return list(words)


class TextSource:
    """Seeded synthetic queries and passages: words drawn Zipf-like from a lexicon, lengths varying.

    Each text's word count is uniform in ``mean * (1 - spread) .. mean * (1 + spread)``, so batches are
    padded as real ones are; the same (seed, stream) always gives the same texts.
    """

    def __init__(self, words: list[str], spread: float) -> None:
        self.words = words
        self.spread = spread
        # Zipf weights 1/rank: a few words frequent, most rare, as in natural text.
        self.cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))

    def texts(self, rng: random.Random, count: int, mean_words: int) -> list[str]:
        low = max(1, round(mean_words * (1 - self.spread)))
        high = max(low, round(mean_words * (1 + self.spread)))
        return [" ".join(rng.choices(self.words, cum_weights=self.cumulative, k=rng.randint(low, high)))
                for _ in range(count)]


# ---------------------------------------------------------------------------------------------- model

def build_random_modernbert(kind: str, directory: Path, words: list[str], max_seq_length: int, seed: int) -> Path:
    """Save a randomly initialised ModernBERT (``tiny`` or a released shape) and its tokenizer to ``directory``."""
    import torch
    from transformers import ModernBertConfig, ModernBertModel

    from ablate.model import TinyShape, train_wordpiece

    if kind == "tiny":
        tiny = TinyShape()
        tokenizer = train_wordpiece([" ".join(words)], tiny.vocab_size)
        max_position = max(tiny.max_position_embeddings, max_seq_length)
        # The mini profile's model: all layers global (the window would cover its short texts anyway).
        dims = dict(hidden_size=tiny.hidden_size, intermediate_size=tiny.intermediate_size,
                    num_hidden_layers=tiny.num_hidden_layers, num_attention_heads=tiny.num_attention_heads,
                    vocab_size=len(tokenizer), max_position_embeddings=max_position, local_attention=max_position,
                    global_attn_every_n_layers=1, attention_dropout=tiny.dropout, mlp_dropout=tiny.dropout,
                    embedding_dropout=tiny.dropout)
    else:
        tokenizer = train_wordpiece([" ".join(words)], GENERATED_VOCAB)
        # The released configuration: 50,368-row embedding, 8,192 positions, 128-token window on 2 of 3 layers.
        dims = dict(RELEASED[kind], vocab_size=RELEASED_VOCAB, max_position_embeddings=8192)
    config = ModernBertConfig(**dims, pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
                              sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
                              eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(seed)
    ModernBertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def load_encoder(path: Path, max_seq_length: int, attn: str, device: str):
    """A SentenceTransformer from ``path``: as saved if it is one, else the transformer + mean pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    model_kwargs = {"attn_implementation": attn}
    if (path / "modules.json").is_file():
        model = SentenceTransformer(str(path), device=device, model_kwargs=model_kwargs)
        model.max_seq_length = max_seq_length
        return model
    transformer = Transformer(str(path), max_seq_length=max_seq_length, model_kwargs=model_kwargs)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device=device)


def model_shape(model, name: str) -> ModelShape | None:
    """The cost model's shape of a loaded encoder, or None when it is not a ModernBERT (no FLOP model)."""
    config = model[0].auto_model.config.to_dict()
    return shape_from_config(config, name) if config.get("model_type") == "modernbert" else None


# ----------------------------------------------------------------------------------------- measuring

def sequence_lengths(feature: dict[str, Any]) -> list[int]:
    """Non-padding tokens per text of one tokenized column, padded or flattened (flash attention)."""
    if "cu_seq_lens_q" in feature:
        bounds = feature["cu_seq_lens_q"].tolist()
        return [b - a for a, b in zip(bounds, bounds[1:])]
    return feature["attention_mask"].sum(dim=1).tolist()


def to_device(feature: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in feature.items()}


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class TrainingResult:
    batch: int
    seconds_per_step: float
    triples_per_s: float
    tokens_per_s: float
    tokens_per_triplet: float
    tokenize_seconds_per_step: float
    flops_per_step: float | None
    achieved_tflops: float | None
    mfu: float | None
    peak_memory_gib: float | None
    final_loss: float
    step_seconds: list[float]


@dataclass
class EncodingResult:
    encode_batch: int
    documents: int
    seconds_per_batch: float
    documents_per_s: float
    tokens_per_s: float
    tokens_per_document: float
    achieved_tflops: float | None
    mfu: float | None
    batch_seconds: list[float]


def _done(timed: list[float], args, wanted: int | None = None) -> bool:
    """Enough timed steps: ``wanted`` (default ``--steps``), or at least MIN_TIMED_STEPS once they have
    used up ``--time-budget`` seconds, so a slow setting (batch 512 on a CPU) cannot run for many minutes."""
    wanted = args.steps if wanted is None else wanted
    if len(timed) >= wanted:
        return True
    return bool(args.time_budget) and len(timed) >= min(MIN_TIMED_STEPS, wanted) and sum(timed) >= args.time_budget


def measure_training(model, shape: ModelShape | None, source: TextSource, args, batch: int, device: str,
                     peak_tflops: float | None) -> TrainingResult:
    """Time CachedMNRL forward + backward + clip + AdamW step at one per-device batch."""
    import torch
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    model.train()
    loss_fn = CachedMultipleNegativesRankingLoss(model, mini_batch_size=args.mini_batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=8e-5, fused=device == "cuda")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step_seconds, tokenize_seconds, tokens, flops, loss_value = [], [], [], [], float("nan")
    step = -1
    while not _done(step_seconds, args):
        step += 1
        rng = random.Random(f"{args.seed}-train-{batch}-{step}")  # str seeds hash the same in every process
        columns = [source.texts(rng, batch, args.query_words), source.texts(rng, batch, args.passage_words),
                   source.texts(rng, batch, args.passage_words)]
        start = time.perf_counter()
        features = [model.preprocess(texts) for texts in columns]
        tokenized = time.perf_counter() - start
        lengths = [n for feature in features for n in sequence_lengths(feature)]
        features = [to_device(feature, device) for feature in features]

        synchronize(device)
        start = time.perf_counter()
        loss = loss_fn(features, None)
        loss.backward()  # runs CachedMNRL's second, gradient-carrying forward and its backward
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        elapsed = time.perf_counter() - start
        loss_value = float(loss.detach())
        if step >= args.warmup_steps:
            step_seconds.append(elapsed)
            tokenize_seconds.append(tokenized)
            tokens.append(sum(lengths))
            if shape is not None:
                flops.append(training_flops(shape, batch, sum(lengths) / batch, attention_context(lengths)))
    median = statistics.median(step_seconds)
    mean_tokens = statistics.fmean(tokens)
    flops_per_step = statistics.fmean(flops) if flops else None
    achieved = flops_per_step / median / 1e12 if flops_per_step else None
    return TrainingResult(
        batch=batch, seconds_per_step=median, triples_per_s=batch / median, tokens_per_s=mean_tokens / median,
        tokens_per_triplet=mean_tokens / batch, tokenize_seconds_per_step=statistics.median(tokenize_seconds),
        flops_per_step=flops_per_step, achieved_tflops=achieved,
        mfu=achieved / peak_tflops if achieved and peak_tflops else None,
        peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        final_loss=loss_value, step_seconds=step_seconds)


def measure_encoding(model, shape: ModelShape | None, source: TextSource, args, device: str,
                     peak_tflops: float | None) -> EncodingResult:
    """Time ``model.encode`` (tokenization included, as in evaluation) over chunks of passages."""
    import torch

    batch_seconds, tokens, flops = [], [], []
    chunk = -1
    while not _done(batch_seconds, args, args.encode_batches):
        chunk += 1
        texts = source.texts(random.Random(f"{args.seed}-encode-{chunk}"), args.encode_batch, args.passage_words)
        lengths = sequence_lengths(model.preprocess(texts))
        synchronize(device)
        start = time.perf_counter()
        with torch.inference_mode():
            model.encode(texts, batch_size=args.encode_batch, convert_to_tensor=True, show_progress_bar=False)
        synchronize(device)
        elapsed = time.perf_counter() - start
        if chunk >= args.warmup_steps:
            batch_seconds.append(elapsed)
            tokens.append(sum(lengths))
            if shape is not None:
                flops.append(encoding_flops(shape, len(lengths), sum(lengths) / len(lengths),
                                            attention_context(lengths)))
    median = statistics.median(batch_seconds)
    mean_tokens = statistics.fmean(tokens)
    achieved = statistics.fmean(flops) / median / 1e12 if flops else None
    return EncodingResult(
        encode_batch=args.encode_batch, documents=args.encode_batch * len(batch_seconds),
        seconds_per_batch=median, documents_per_s=args.encode_batch / median, tokens_per_s=mean_tokens / median,
        tokens_per_document=mean_tokens / args.encode_batch, achieved_tflops=achieved,
        mfu=achieved / peak_tflops if achieved and peak_tflops else None, batch_seconds=batch_seconds)


# ------------------------------------------------------------------------------------------- settings

def resolve_device_settings(args) -> tuple[str, str, str, GPU | None, float | None, list[str]]:
    """Device, dtype, attention implementation and peak TFLOPS actually used, with notes on any fallback."""
    import torch

    notes = []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16_ok = device == "cuda" and torch.cuda.is_bf16_supported()
    dtype = args.dtype or ("bf16" if bf16_ok else "fp32")
    if dtype == "bf16" and not bf16_ok:
        notes.append("bf16 autocast needs a CUDA device that supports it: measured in fp32")
        dtype = "fp32"
    flash_ok = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    attn = args.attn or ("flash_attention_2" if flash_ok else "sdpa")
    if attn == "flash_attention_2" and not flash_ok:
        raise SystemExit("--attn flash_attention_2 needs CUDA and the flash_attn package")
    if attn == "flash_attention_2" and dtype == "fp32":
        raise SystemExit("flash_attention_2 runs in bf16/fp16 only: use --dtype bf16 or another --attn")
    gpu = None
    if device == "cuda":
        gpu = get_gpu(args.gpu) if args.gpu else recognise_gpu(torch.cuda.get_device_name())
    elif args.gpu:
        notes.append(f"--gpu {args.gpu} ignored on CPU (MFU needs --peak-tflops there)")
    peak = args.peak_tflops or (gpu.peak_bf16_tflops if gpu else None)
    if peak and dtype == "fp32" and device == "cuda":
        notes.append("MFU is against the bf16 peak although the run is fp32")
    return device, dtype, attn, gpu, peak, notes


# CUDA device names (torch.cuda.get_device_name) -> GPUS keys, most specific first; whole words only, so
# "L40" (not listed) is not taken for an "L4".
_DEVICE_NAME_RULES = [
    (r"\bh200\b.*\bnvl\b", "h200-nvl"), (r"\bh200\b", "h200"), (r"\bh100\b.*\bnvl\b", "h100-nvl"),
    (r"\bh100\b.*\bpcie\b", "h100-pcie"), (r"\bh100\b", "h100"),
    (r"\ba100\b.*\b80gb\b", "a100-80gb"), (r"\ba100\b.*\b40gb\b", "a100-40gb"),
    (r"\bl40s\b", "l40s"), (r"\b4090\b", "rtx4090"), (r"\ba10g\b", "a10g"), (r"\bl4\b", "l4"),
]


def recognise_gpu(device_name: str) -> GPU | None:
    """The GPUS entry a CUDA device name such as "NVIDIA H100 80GB HBM3" refers to, or None if unknown."""
    name = device_name.lower().replace("-", " ").replace("_", " ")
    for pattern, key in _DEVICE_NAME_RULES:
        if re.search(pattern, name):
            return GPUS[key]
    return None


def busy_cores(seconds: float = 1.0) -> float | None:
    """How many cores other processes keep busy, sampled from /proc/stat while this one sleeps (Linux).

    The load average would do, but it trails by a minute and so still counts the previous benchmark run.
    """
    def snapshot() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total_before, idle_before = snapshot()
        time.sleep(seconds)
        total_after, idle_after = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total_after - total_before
    if elapsed <= 0:
        return None
    return (1 - (idle_after - idle_before) / elapsed) * (os.cpu_count() or 1)


def autocast_forward(model, device: str) -> None:
    """Run the model's forward under bf16 autocast, as accelerate does for the trainer's ``bf16=True``.

    Wrapping ``forward`` (not a ``with`` block around the step) also covers the forward pass CachedMNRL
    re-runs inside ``backward()``, and leaves the loss and the optimizer in fp32, as in the trainer.
    """
    import torch

    model.forward = torch.autocast(device_type=device, dtype=torch.bfloat16)(model.forward)


def versions() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__,
            "flash_attn": _version_or_none("flash_attn")}


def _version_or_none(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


# ----------------------------------------------------------------------------------------------- main

def _fmt(value: float | None, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny",
                        help="tiny | modernbert-base | modernbert-large (random init, offline) | a local model path")
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 512],
                        help="per-device batch sizes; the first is the baseline of the ratios")
    parser.add_argument("--mini-batch", type=int, default=16, help="CachedMNRL mini_batch_size (recipe: 16)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (and encode batches) per setting")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--time-budget", type=float, default=20.0,
                        help=f"stop timing a setting after this many seconds once it has {MIN_TIMED_STEPS} "
                             "timed steps (0: always run --steps)")
    parser.add_argument("--seq-len", type=int, default=512, help="max tokens per text (truncation)")
    parser.add_argument("--query-words", type=int, default=8, help="mean words per query (one token each)")
    parser.add_argument("--passage-words", type=int, default=78, help="mean words per passage")
    parser.add_argument("--length-spread", type=float, default=0.5,
                        help="text lengths vary uniformly by this fraction around the mean")
    parser.add_argument("--encode-batch", type=int, default=128, help="model.encode batch size")
    parser.add_argument("--encode-batches", type=int, default=None,
                        help="timed encode batches (default: --steps)")
    parser.add_argument("--gpu", default=None,
                        help=f"GPU whose bf16 peak MFU uses: {', '.join(g.name for g in GPUS.values())}")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak TFLOPS for MFU (overrides --gpu)")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default=None,
                        help="default: bf16 autocast where CUDA supports it, else fp32")
    parser.add_argument("--attn", choices=["sdpa", "flash_attention_2", "eager"], default=None,
                        help="default: flash_attention_2 with CUDA and flash_attn installed, else sdpa")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice, or 1 when the CPU is already busy)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the text and the random weights")
    parser.add_argument("--json", type=Path, default=None, help="write every number and setting here")
    args = parser.parse_args(argv)
    if args.encode_batches is None:
        args.encode_batches = args.steps
    if args.gpu:
        try:
            get_gpu(args.gpu)  # fail on a typo before minutes of model building
        except ValueError as error:
            parser.error(str(error))
    for name in ("steps", "mini_batch", "seq_len", "query_words", "passage_words", "encode_batch", "encode_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.batch) < 2:
        parser.error("--batch sizes must be at least 2 (in-batch negatives)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from ablate._quiet import quiet_libraries

    quiet_libraries()
    import torch

    torch.manual_seed(args.seed)
    device, dtype, attn, gpu, peak, notes = resolve_device_settings(args)
    others = busy_cores() if device == "cpu" else None
    if args.threads:
        torch.set_num_threads(args.threads)
    elif others is not None and others > 0.5:
        # Other processes on the cores make torch's OpenMP threads wait on each other: on 2 shared cores
        # single mini-batch forwards were measured 10-30x slower (0.8 s instead of 0.03 s), and the median
        # does not hide that. One thread does not wait on anybody.
        torch.set_num_threads(1)
        notes.append(f"CPU busy before the run (other processes used {others:.1f} of {os.cpu_count()} cores): "
                     "using 1 torch thread to avoid OpenMP stalls (--threads to override); timings are still "
                     "shared-machine ones")
    words = lexicon(args.seed, LEXICON_WORDS["tiny" if args.model == "tiny" else "released"])
    source = TextSource(words, args.length_spread)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if args.model in ("tiny", *RELEASED):
            path = build_random_modernbert(args.model, Path(tmp), words, args.seq_len, args.seed)
        else:
            path = Path(args.model)
            if not path.is_dir():
                raise SystemExit(f"--model {args.model}: not tiny, {', '.join(RELEASED)} or a local directory")
        model = load_encoder(path, args.seq_len, attn, device)
        built = time.perf_counter() - start
    shape = model_shape(model, args.model)
    if shape is None:
        notes.append("not a ModernBERT: no FLOP model, MFU n/a")
    if dtype == "bf16":
        autocast_forward(model, device)

    print(f"{args.model}: {shape.params / 1e6:.1f}M params, {shape.layers} layers, hidden {shape.hidden}"
          if shape else f"{args.model}", f"(ready in {built:.1f} s)")
    print(f"device {device_name(device)}, {dtype}, attention {attn}, seq-len {args.seq_len}, "
          f"peak {_fmt(peak, '.1f')} TFLOPS{f' ({gpu.name})' if gpu and not args.peak_tflops else ''}")
    for note in notes:
        print(f"note: {note}")

    print(f"\ntraining: CachedMNRL mini-batch {args.mini_batch}, AdamW; median over timed steps after "
          f"{args.warmup_steps} warm-up; ratio = triples/s / batch {args.batch[0]}'s (measured in this run)")
    print(f"{'batch':>6} {'steps':>5} {'s/step':>9} {'triples/s':>10} {'tokens/s':>10} {'tok/trip':>8} "
          f"{'tokenize s':>10} {'TFLOP/s':>8} {'MFU':>7} {'peak GiB':>8} {'ratio':>6}")
    training: list[TrainingResult] = []
    for batch in args.batch:
        result = measure_training(model, shape, source, args, batch, device, peak)
        training.append(result)
        print(f"{batch:>6} {len(result.step_seconds):>5} {result.seconds_per_step:>9.4f} "
              f"{result.triples_per_s:>10.1f} {result.tokens_per_s:>10.0f} {result.tokens_per_triplet:>8.1f} "
              f"{result.tokenize_seconds_per_step:>10.4f} "
              f"{_fmt(result.achieved_tflops, '.3f'):>8} {_fmt(result.mfu, '.1%'):>7} "
              f"{_fmt(result.peak_memory_gib, '.2f'):>8} {result.triples_per_s / training[0].triples_per_s:>6.3f}",
              flush=True)

    encoding = measure_encoding(model, shape, source, args, device, peak)
    # Training runs 4 forward-equivalents per token (CachedMNRL), encoding 1: at equal utilisation encoding
    # moves 4x the tokens per second. The measured ratio says how far each falls from that.
    token_ratio = encoding.tokens_per_s / training[0].tokens_per_s
    print(f"\nencoding: model.encode, batch {args.encode_batch}, median of {len(encoding.batch_seconds)} batches "
          f"after {args.warmup_steps} warm-up")
    print(f"  {encoding.documents_per_s:.1f} documents/s, {encoding.tokens_per_s:.0f} tokens/s, "
          f"{encoding.tokens_per_document:.1f} tokens/document, {_fmt(encoding.achieved_tflops, '.3f')} TFLOP/s, "
          f"MFU {_fmt(encoding.mfu, '.1%')}")
    print(f"  tokens/s ratio encoding / training at batch {args.batch[0]}: {token_ratio:.2f} "
          "(4.00 if both reached the same utilisation)")

    report = {
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "resolved": {"device": device, "device_name": device_name(device), "dtype": dtype, "attn": attn,
                     "torch_threads": torch.get_num_threads(), "other_processes_busy_cores": others,
                     "gpu": gpu.name if gpu else None, "peak_tflops": peak, "notes": notes},
        "versions": versions(),
        "model_shape": asdict(shape) if shape else None,
        "params": shape.params if shape else sum(p.numel() for p in model.parameters()),
        "training": [asdict(result) for result in training],
        "encoding": asdict(encoding),
        "encode_to_train_tokens_per_s": token_ratio,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
