"""Trained models kept on disk, keyed by what decides them: the profile, the training config and the seed.

Evaluation-only factors (self-hit removal, encoding length) then reuse one trained model per training
configuration and seed instead of retraining it. The store is bounded: after each save, the least recently
used models are removed until the total size fits the budget.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

DEFAULT_BUDGET_BYTES = 2 * 1024**3


def training_key(profile_description: dict, config, seed: int, train_set: str) -> str:
    """Identity of a trained model: equal keys mean the same training run (same data, config, seed)."""
    payload = {"profile": profile_description, "config": asdict(config), "seed": seed, "train_set": train_set}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class ModelStore:
    """A directory of saved SentenceTransformer models, one subdirectory per training key."""

    def __init__(self, root: str | os.PathLike, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.root = Path(root)
        self.budget_bytes = int(budget_bytes)

    def path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> Path | None:
        """The saved model for ``key``, or None. Marks it recently used."""
        target = self.path(key)
        if (target / "ablate-model.json").is_file():
            os.utime(target / "ablate-model.json")
            return target
        return None

    def put(self, key: str, model, metadata: dict | None = None) -> Path:
        """Save ``model`` under ``key`` (atomically), then trim the store to its budget."""
        target = self.path(key)
        if self.get(key) is not None:
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            model.save(str(staging))
            (staging / "ablate-model.json").write_text(json.dumps({"key": key, "saved": time.time(),
                                                                   **(metadata or {})}, default=str))
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if self.get(key) is None:  # not a concurrent save of the same model: a real failure
                raise
        self.trim(keep=key)
        return target

    def trim(self, keep: str | None = None) -> list[str]:
        """Remove least recently used models until the store fits its budget; returns removed keys."""
        entries = []
        for child in self.root.iterdir() if self.root.is_dir() else []:
            marker = child / "ablate-model.json"
            if marker.is_file():
                entries.append((marker.stat().st_mtime, child.name, _size(child)))
        total = sum(size for _, _, size in entries)
        removed = []
        for _, name, size in sorted(entries):
            if total <= self.budget_bytes:
                break
            if name == keep:
                continue
            shutil.rmtree(self.root / name, ignore_errors=True)
            total -= size
            removed.append(name)
        return removed

    def load(self, key: str):
        from sentence_transformers import SentenceTransformer

        from ablate.train import has_cuda

        path = self.get(key)
        if path is None:
            raise KeyError(key)
        return SentenceTransformer(str(path), device="cuda" if has_cuda() else "cpu")

