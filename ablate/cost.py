"""What a study costs: a stated, checkable model of compute (FLOPs, GPU-hours) and disk for ModernBERT DPR.

Every number here follows from assumptions written next to it, so a researcher can audit (and change)
them before booking GPUs:

* **Parameters** are counted analytically from ModernBERT's architecture as transformers builds it
  (``ModernBertModel``), and checked in ``tests/test_cost.py`` against real modules for several shapes,
  including the published totals of ModernBERT-base (149,655,232) and -large (395,881,664), which count the
  masked-language-model head.
* **FLOPs** use the convention of Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", Table 1)
  as written out in the PaLM paper's MFU appendix (Chowdhery et al. 2022, App. B): a forward pass costs
  ``2 * N`` FLOPs per token for the ``N`` non-embedding parameters (one multiply and one add per weight)
  plus ``4 * d * T`` per token and layer for the attention scores ``Q K^T`` and the context ``A V`` over
  ``T`` attended tokens. The backward pass costs twice the forward. Embedding look-ups, norms' elementwise
  work, activations, softmax and the contrastive loss's ``B x 2B`` similarity matrix are not counted (each
  is well under 1 % at these sizes). These are *model* FLOPs: work a padded batch spends on padding tokens,
  or a masked-out attention block, is not counted, so it shows up as lower utilisation.
* **GPU-hours** divide FLOPs by a GPU's dense bf16 tensor-core peak times a model FLOP utilisation (MFU);
  ``DEFAULT_MFU`` is calibrated on the one public timing of this exact recipe (see its comment).
* **Disk** counts bytes per parameter of the files sentence-transformers and the HF trainer write.

Pure Python: nothing here imports torch, so a planner can run it anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a ModernBERT encoder that decide its parameter count and FLOPs.

    The fields after ``max_position`` default to ModernBERT's released configuration: no biases in linear
    layers or LayerNorms, global attention on every third layer (0, 3, 6, ...) and a 128-token sliding
    window on the others, and an MLM head (used only by ``params_with_mlm_head``) whose dense layer has no
    bias, whose decoder has a bias and shares its weight with the token embeddings.
    """

    name: str
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    max_position: int
    attention_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = False
    local_attention: int = 128
    global_attn_every_n_layers: int = 3
    classifier_bias: bool = False
    decoder_bias: bool = True
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        for field in ("layers", "hidden", "intermediate", "vocab", "max_position", "local_attention",
                      "global_attn_every_n_layers"):
            if getattr(self, field) <= 0:
                raise ValueError(f"ModelShape.{field} must be positive, got {getattr(self, field)}")

    def _norm(self) -> int:
        """One LayerNorm: a weight, plus a bias only when ``norm_bias`` (ModernBERT: no bias)."""
        return self.hidden * (2 if self.norm_bias else 1)

    @property
    def embedding_params(self) -> int:
        """The token embedding matrix (ModernBERT uses rotary positions: no position embeddings)."""
        return self.vocab * self.hidden

    @property
    def layer_params(self) -> int:
        """One encoder layer other than layer 0 (which has no attention LayerNorm).

        Attention: ``Wqkv`` (hidden -> 3 * hidden) and ``Wo`` (hidden -> hidden). MLP: GLU, so ``Wi`` maps
        hidden -> 2 * intermediate (value and gate) and ``Wo`` intermediate -> hidden. Two LayerNorms.
        """
        h, i = self.hidden, self.intermediate
        attention = 3 * h * h + h * h + (4 * h if self.attention_bias else 0)
        mlp = h * 2 * i + i * h + (2 * i + h if self.mlp_bias else 0)
        return attention + mlp + 2 * self._norm()

    @property
    def params(self) -> int:
        """Total parameters of the encoder a mean-pooled sentence-transformers model trains and saves.

        That is ``ModernBertModel``: token embeddings + embedding LayerNorm + ``layers`` encoder layers
        (layer 0's attention norm is an Identity) + the final LayerNorm. Mean pooling has no parameters,
        and there is no MLM head (see ``params_with_mlm_head`` for the hub checkpoint's count).
        """
        embeddings = self.embedding_params + self._norm()
        encoder = self.layers * self.layer_params - self._norm()  # layer 0 has no attention norm
        final_norm = self._norm()
        return embeddings + encoder + final_norm

    @property
    def non_embedding_params(self) -> int:
        """``params`` less the token embedding matrix: the weights every token multiplies through."""
        return self.params - self.embedding_params

    @property
    def params_with_mlm_head(self) -> int:
        """``ModernBertForMaskedLM``: ``params`` + head (dense hidden -> hidden, LayerNorm) + decoder.

        The decoder's weight is the token embedding matrix when ``tie_word_embeddings`` (counted once, as
        torch's ``parameters()`` and the published totals do); its bias has ``vocab`` entries.
        """
        head = self.hidden * self.hidden + (self.hidden if self.classifier_bias else 0) + self._norm()
        decoder = (0 if self.tie_word_embeddings else self.vocab * self.hidden) + (
            self.vocab if self.decoder_bias else 0)
        return self.params + head + decoder

    @property
    def global_layers(self) -> int:
        """Layers with full attention: those whose index is a multiple of ``global_attn_every_n_layers``."""
        return math.ceil(self.layers / self.global_attn_every_n_layers)

    @property
    def local_layers(self) -> int:
        """Layers with sliding-window attention over ``local_attention`` tokens."""
        return self.layers - self.global_layers


def shape_from_config(config: dict, name: str = "") -> ModelShape:
    """The ``ModelShape`` of a HF ModernBERT ``config.json`` (as a dict, e.g. ``config.to_dict()``).

    Reads the attention pattern from ``global_attn_every_n_layers`` (the hub's config.json) or from
    ``layer_types`` (what transformers 5 writes); a ``layer_types`` list that is not "full attention on
    every n-th layer from layer 0" is refused rather than silently mis-counted.
    """
    layers = int(config["num_hidden_layers"])
    every = config.get("global_attn_every_n_layers")
    layer_types = config.get("layer_types")
    if layer_types:
        full = [i for i, kind in enumerate(layer_types) if kind == "full_attention"]
        inferred = full[1] - full[0] if len(full) > 1 else layers
        expected = ["full_attention" if i % inferred == 0 else "sliding_attention" for i in range(layers)]
        if list(layer_types) != expected:
            raise ValueError(f"layer_types {layer_types} is not global attention every n layers from layer 0; "
                             "ModelShape cannot describe it")
        every = inferred
    return ModelShape(
        name=name or str(config.get("_name_or_path", "")),
        layers=layers,
        hidden=int(config["hidden_size"]),
        intermediate=int(config["intermediate_size"]),
        vocab=int(config["vocab_size"]),
        max_position=int(config["max_position_embeddings"]),
        attention_bias=bool(config.get("attention_bias", False)),
        mlp_bias=bool(config.get("mlp_bias", False)),
        norm_bias=bool(config.get("norm_bias", False)),
        local_attention=int(config.get("local_attention", 128)),
        global_attn_every_n_layers=int(every or 3),
        classifier_bias=bool(config.get("classifier_bias", False)),
        decoder_bias=bool(config.get("decoder_bias", True)),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
    )


# The released checkpoints' config.json values (hub, revision of 2024-12-19 with max_position 8192).
MODEL_SHAPES: dict[str, ModelShape] = {
    "answerdotai/ModernBERT-base": ModelShape("answerdotai/ModernBERT-base", layers=22, hidden=768,
                                              intermediate=1152, vocab=50368, max_position=8192),
    "answerdotai/ModernBERT-large": ModelShape("answerdotai/ModernBERT-large", layers=28, hidden=1024,
                                               intermediate=2624, vocab=50368, max_position=8192),
}


@dataclass(frozen=True)
class GPU:
    """One accelerator: its dense (no structured sparsity) bf16 tensor-core peak, its memory, and its plain
    fp32 peak (CUDA cores: what fp32 matmuls get while torch leaves TF32 off, its default)."""

    name: str
    peak_bf16_tflops: float
    memory_gib: float
    peak_fp32_tflops: float = 0.0

    def peak_tflops(self, precision: str) -> float:
        """The peak for ``precision`` "bf16" or "fp32"."""
        if precision == "bf16":
            return self.peak_bf16_tflops
        if precision == "fp32":
            return self.peak_fp32_tflops
        raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")


# Dense bf16 tensor-core peaks with fp32 accumulation (what torch's bf16 matmuls use), from NVIDIA's
# datasheets/whitepapers; NVIDIA's headline figures are often "with sparsity", i.e. twice these. Memory is
# the nominal capacity (NVIDIA's "80GB" is the 80 GiB nvidia-smi reports, less a few hundred MiB reserved).
# The last figure is each datasheet's (non-tensor) FP32 peak; for the A10G, the A10's 31.2.
GPUS: dict[str, GPU] = {gpu.name.lower(): gpu for gpu in (
    GPU("H200", 989.4, 141.0, 66.9),       # H200 SXM datasheet: 1,979 TFLOPS bf16 with sparsity -> 989.4 dense.
    GPU("H100", 989.4, 80.0, 66.9),        # H100 SXM5 (Hopper whitepaper): 1,979 with sparsity -> 989.4 dense.
    GPU("H100-PCIe", 756.0, 80.0, 51.2),   # H100 PCIe datasheet: 1,513 with sparsity -> 756 dense.
    GPU("H100-NVL", 835.5, 94.0, 60.0),    # H100 NVL datasheet: 1,671 with sparsity -> 835.5 dense.
    GPU("H200-NVL", 835.5, 141.0, 60.0),   # H200 NVL datasheet: 1,671 with sparsity -> 835.5 dense.
    GPU("A100-80GB", 312.0, 80.0, 19.5),   # A100 datasheet (SXM and PCIe): 312 dense, 624 with sparsity.
    GPU("A100-40GB", 312.0, 40.0, 19.5),
    GPU("L40S", 362.05, 48.0, 91.6),       # L40S datasheet: 733 with sparsity -> 362.05 dense.
    # RTX 4090 (Ada Lovelace whitepaper, appendix): 330.3 TFLOPS fp16/bf16 with fp16 accumulate but 165.2
    # with fp32 accumulate (GeForce parts run fp32 accumulation at half rate); torch accumulates bf16
    # matmuls in fp32, so 165.2 is the reachable peak.
    GPU("RTX4090", 165.2, 24.0, 82.6),
    GPU("L4", 121.0, 24.0, 30.3),          # L4 datasheet: 242 bf16 with sparsity -> 121 dense.
    # A10G (AWS g5): NVIDIA publishes no datasheet; AWS's figure as compared with the A10 (125 dense) by
    # Baseten ("NVIDIA A10 vs A10G for ML model inference"): 70 dense bf16.
    GPU("A10G", 70.0, 24.0, 31.2),
)}


def get_gpu(name: str) -> GPU:
    """The ``GPU`` called ``name``, case-insensitively (``"h200"``, ``"RTX4090"``); ValueError otherwise."""
    try:
        return GPUS[name.strip().lower()]
    except KeyError:
        allowed = ", ".join(gpu.name for gpu in GPUS.values())
        raise ValueError(f"unknown GPU {name!r}; allowed: {allowed}") from None


def attention_context(lengths: Iterable[float]) -> float:
    """The ``seq_len`` to pass for texts of these token ``lengths`` so that attention FLOPs come out exact.

    Unpadded attention costs ``T^2`` per layer for a text of ``T`` tokens, i.e. ``T`` per token; over many
    texts the per-token context is the token-weighted mean ``sum(T^2) / sum(T)``, not the plain mean. (On
    sliding-window layers this is exact while no text is longer than the window.)
    """
    lengths = [float(t) for t in lengths]
    total = sum(lengths)
    if total <= 0:
        raise ValueError("attention_context needs at least one non-empty text")
    return sum(t * t for t in lengths) / total


def forward_flops_per_token(shape: ModelShape, seq_len: float) -> float:
    """FLOPs of one forward pass per token: ``2 * non_embedding_params + 4 * hidden * context * layers``.

    ``seq_len`` is the number of tokens each token attends to: its own text's length when inputs are
    unpadded (flash attention), the padded length otherwise (see ``attention_context`` for a mix of
    lengths). ModernBERT's alternating attention is modelled: the ``global_layers`` attend to ``seq_len``
    tokens, the ``local_layers`` to ``min(seq_len, local_attention)`` (the nominal 128-token window; the
    exact band is +-64 tokens, clipped at the text's ends, so this slightly over-counts texts of 65-200
    tokens: under 0.2 % of the total at MS MARCO lengths). Convention: Kaplan et al. 2020 / PaLM App. B.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    attended = shape.global_layers * seq_len + shape.local_layers * min(seq_len, shape.local_attention)
    return 2.0 * shape.non_embedding_params + 4.0 * shape.hidden * attended


def training_flops(shape: ModelShape, triplets: int, tokens_per_triplet: float, seq_len: float) -> float:
    """FLOPs to train on ``triplets`` (anchor, positive, hard negative) rows with CachedMNRL.

    CachedMultipleNegativesRankingLoss (GradCache) embeds every mini-batch twice: first a forward pass
    without gradients to get all embeddings for the in-batch loss, then, after the loss has back-propagated
    to the embeddings, a second forward pass with gradients followed by its backward pass (2x forward). So
    each token costs ``forward x (1 + 1 + 2) = 4 x forward``, against 3x for a plain (uncached) loss. The
    optimizer step (a few FLOPs per parameter per step) and the loss itself are not counted.
    ``tokens_per_triplet`` counts non-padding tokens of all three texts, special tokens included.
    """
    return 4.0 * triplets * tokens_per_triplet * forward_flops_per_token(shape, seq_len)


def encoding_flops(shape: ModelShape, texts: int, tokens_per_text: float, seq_len: float) -> float:
    """FLOPs to embed ``texts`` texts (a corpus or queries) for evaluation: one forward pass per token."""
    return texts * tokens_per_text * forward_flops_per_token(shape, seq_len)


def gpu_hours(flops: float, gpu: GPU, mfu: float, precision: str = "bf16") -> float:
    """Hours on one ``gpu`` to execute ``flops`` at model FLOP utilisation ``mfu`` (a fraction of the
    ``precision`` peak)."""
    if not 0.0 < mfu <= 1.0:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    return flops / (gpu.peak_tflops(precision) * 1e12 * mfu) / 3600.0


# Calibration of DEFAULT_MFU on the one public timing of this recipe: the reproduction trained
# ModernBERT-base for one epoch over 1,250,000 MS MARCO triplets (per-device batch 512, CachedMNRL
# mini-batch 16, bf16) in about 1 hour on one RTX 4090.
# Assumed tokens per triplet with ModernBERT's tokenizer, unpadded (flash attention): query 10, each
# passage 80 (special tokens included) -> 170 tokens; attention context sum(T^2)/sum(T) = 12,900/170.
#   non-embedding params      = 149,014,272 - 50,368 * 768 = 110,331,648
#   linear FLOPs per triplet  = 170 * 2 * 110,331,648                          = 3.7513e10
#   attention per triplet     = 4 * 768 * 22 layers * (10^2 + 2 * 80^2)         = 8.7183e8
#     (every text is shorter than the 128-token window, so local layers see the whole text too)
#   forward per triplet       = 3.8385e10;  x 4 (CachedMNRL) x 1.25M triplets  = 1.9192e17 FLOPs
#   at 100 % of 165.2 TFLOPS  = 1,161.8 s = 0.3227 h  ->  1 h implies MFU = 0.3227 ~ 0.32.
# Using it for another GPU assumes that GPU reaches the same share of its peak on this workload; a faster
# GPU at CachedMNRL's small mini-batches (16 x ~80 tokens per forward) is more likely to reach less.
DEFAULT_MFU: float = 0.32

MSMARCO_TOKENS_PER_TRIPLET: float = 170.0
MSMARCO_ATTENTION_CONTEXT: float = (10 ** 2 + 2 * 80 ** 2) / 170.0

# fp32 weights are 4 bytes each; AdamW keeps two fp32 moments (exp_avg, exp_avg_sq) per parameter.
FP32_BYTES = 4
ADAMW_STATE_BYTES = 8


def checkpoint_bytes(shape: ModelShape) -> int:
    """Bytes of a saved sentence-transformers model's weights: ``model.safetensors`` in fp32.

    4 bytes per parameter of ``params`` (the encoder without MLM head). Not counted: the safetensors JSON
    header (about 100 bytes per tensor, a few kB), the tokenizer files (ModernBERT's tokenizer.json is about
    3.5 MB) and the small config files.
    """
    return FP32_BYTES * shape.params


def training_state_bytes(shape: ModelShape) -> int:
    """Bytes of one resumable trainer checkpoint: 12 bytes per parameter.

    ``model.safetensors`` (fp32 weights, 4 B/param; bf16 autocast keeps fp32 master weights, so there is no
    extra copy) + ``optimizer.pt`` (AdamW's two fp32 moments, 8 B/param). The scheduler, RNG states,
    trainer_state.json and training_args.bin are a few kB and are not counted, nor are tokenizer files.
    """
    return (FP32_BYTES + ADAMW_STATE_BYTES) * shape.params


# What a profile tells a planner (``Profile.cost_basis`` / ``Profile.eval_sets``), read by ``ablate.plan``.


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set as a plan needs it (sizes 0 when unknown)."""

    name: str
    task: str
    split: str
    source: str          # "mteb/scifact@d56462d..." or a local path
    queries: int
    documents: int
    query_tokens: float
    document_tokens: float
    corpus_group: str | None = None
    self_hits: str = ""


@dataclass(frozen=True)
class CostBasis:
    """How a profile's work becomes time. GPU profiles give a model shape (FLOPs); CPU profiles a measured rate."""

    shape: ModelShape | None
    tokens_per_triplet: float
    train_seq_len: float                       # tokens each training token attends to
    max_seq_len: int
    train_rows: dict[str, int]                 # "subset"/"full" -> training rows
    seconds_per_triplet: float | None = None   # CPU profiles: measured rate on the reference machine
    seconds_per_evaluation: float | None = None
    basis_note: str = ""
    eval_precision: str = "fp32"               # evaluation runs at this precision's peak
