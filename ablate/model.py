"""Base encoders: the tiny from-scratch ModernBERT of the ``mini`` profile, and hub checkpoints.

The tiny model stands in for a pretrained checkpoint: it is built once per (world, seed, shape) from
``transformers.ModernBertConfig`` with a WordPiece tokenizer trained on the world's own text, saved to
disk, and then loaded by every trial exactly as a hub checkpoint would be.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

# Every path through this module is offline unless the caller explicitly asks for the hub.


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


_WORD = re.compile(r"\w+|[^\w\s]")


def _special_tokens() -> list[str]:
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocabulary(texts: list[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary learned from word frequencies in ``texts``, identical on every run.

    ``tokenizers``' own WordPiece trainer breaks frequency ties in hash-map order, which changes from one
    process to the next, so the same seed would give different tokenizers (and different scores). This
    learner keeps every character (as a word start and as a ``##`` continuation), then the most frequent
    words, then the most frequent 2-4 character pieces of the remaining words, ties broken alphabetically.
    """
    words = Counter(token for text in texts for token in _WORD.findall(text.lower()))
    chars = sorted({c for word in words for c in word})
    vocab = _special_tokens() + chars + [f"##{c}" for c in chars]
    budget = vocab_size - len(vocab)
    if budget <= 0:
        raise ValueError(f"vocab_size {vocab_size} is too small for {len(chars)} characters")
    ranked = [w for w in sorted(words, key=lambda w: (-words[w], w)) if w not in set(chars)]
    whole = ranked[: budget * 3 // 4]
    pieces: Counter = Counter()
    for word in ranked[len(whole):]:
        for n in (2, 3, 4):
            if len(word) > n:
                pieces[word[:n]] += words[word]
                for i in range(1, len(word) - n + 1):
                    pieces[f"##{word[i:i + n]}"] += words[word]
    taken = set(vocab) | set(whole)
    extra = [p for p in sorted(pieces, key=lambda p: (-pieces[p], p)) if p not in taken]
    return vocab + whole + extra[: vocab_size - len(vocab) - len(whole)]


def train_wordpiece(texts: list[str], vocab_size: int):
    """A BERT-style WordPiece tokenizer whose vocabulary is learned from ``texts`` (deterministically)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(wordpiece_vocabulary(texts, vocab_size))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=8192)


def content_hash(directory: Path) -> str:
    """Hash of a saved model's weights and tokenizer: two builds are the same model iff equal."""
    digest = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        path = Path(directory) / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def built_model_hash(path: Path) -> str:
    return json.loads((Path(path) / "ready").read_text())["content"]


def tiny_modernbert_path(cache_dir: Path, world, seed: int, shape: TinyShape = TinyShape()) -> Path:
    """Path of the tiny base model for ``world``; built (atomically) on first use and reused after."""
    key = hashlib.sha256(json.dumps({"world": world.revision, "seed": seed, "shape": asdict(shape),
                                     "tokenizer": "frequency-wordpiece-1"},
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
    (staging / "ready").write_text(json.dumps({"world": world.revision, "seed": seed, "shape": asdict(shape),
                                               "content": content_hash(staging)}))
    try:
        staging.rename(target)
    except OSError:  # another process built the same model first; theirs is identical
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
    return target
