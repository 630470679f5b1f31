"""Base encoders: the tiny from-scratch ModernBERT of the ``mini`` profile, and hub checkpoints.

The tiny model stands in for a pretrained checkpoint: it is built once per (world, seed, shape) from
``transformers.ModernBertConfig`` with a WordPiece tokenizer trained on the world's own text, saved to
disk, and then loaded by every trial exactly as a hub checkpoint would be.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

# Every path through this module is offline unless the caller explicitly asks for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class TinyShape:
    """Shape of the from-scratch encoder; small enough to train a trial in seconds on two cores."""

    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    max_position_embeddings: int = 512
    dropout: float = 0.1


def _special_tokens() -> list[str]:
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: list[str], vocab_size: int):
    """A BERT-style WordPiece tokenizer learned from ``texts`` (deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_special_tokens(),
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=8192)


def tiny_modernbert_path(cache_dir: Path, world, seed: int, shape: TinyShape = TinyShape()) -> Path:
    """Path of the tiny base model for ``world``; built (atomically) on first use and reused after."""
    key = hashlib.sha256(json.dumps({"world": world.revision, "seed": seed, "shape": asdict(shape)},
                                    sort_keys=True).encode()).hexdigest()[:12]
    target = Path(cache_dir) / f"tiny-modernbert-{key}"
    if (target / "ready").is_file():
        return target
    import torch
    from transformers import ModernBertConfig, ModernBertModel

    tokenizer = train_wordpiece(world.texts(), shape.vocab_size)
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        max_position_embeddings=shape.max_position_embeddings,
        local_attention=shape.max_position_embeddings,
        global_attn_every_n_layers=1,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        attention_dropout=shape.dropout,
        mlp_dropout=shape.dropout,
        embedding_dropout=shape.dropout,
    )
    torch.manual_seed(seed)
    model = ModernBertModel(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "ready").write_text(json.dumps({"world": world.revision, "seed": seed, "shape": asdict(shape)}))
    try:
        staging.rename(target)
    except OSError:  # another process built the same model first; theirs is identical
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
    return target
