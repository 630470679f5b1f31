"""Encode a corpus that several evaluation tasks share once per model.

FEVER and Climate-FEVER search the same 5.4M-document Wikipedia corpus (Climate-FEVER's copy has 25 more
documents). Encoding it twice doubles the most expensive part of a paper-scale evaluation. mteb encodes a
corpus in chunks through the model's ``encode``; this wrapper sits in that call and remembers each
document's embedding under a key made of its id *and* its text, so a document is reused only when both
match exactly and a document that differs between the two copies is encoded afresh. Reused embeddings
are the very arrays the model produced, so shared and separate evaluations give identical scores.

Memory is bounded by the caller: ``retain`` is switched on only while a later task needs the same corpus,
and ``release`` drops everything after the last one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def _document_keys(dataset) -> list[bytes]:
    """One key per row: a digest of the document id and its text as mteb feeds it to the model."""
    ids = dataset["id"]
    texts = dataset["text"]
    return [hashlib.blake2b(f"{doc_id}\x00{text}".encode(), digest_size=16).digest()
            for doc_id, text in zip(ids, texts)]


class SharedCorpusEncoder:
    """An mteb encoder that reuses the embeddings of documents it has already encoded (while retaining).

    Queries pass straight through. ``encoded_documents`` and ``reused_documents`` count what happened,
    so a trial can record that a shared corpus was indeed encoded once.
    """

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self._rows: dict[bytes, np.ndarray] = {}
        self.retain = False
        self.encoded_documents = 0
        self.reused_documents = 0

    @property
    def mteb_model_meta(self):
        return self._encoder.mteb_model_meta

    def similarity(self, *args, **kwargs):
        return self._encoder.similarity(*args, **kwargs)

    def similarity_pairwise(self, *args, **kwargs):
        return self._encoder.similarity_pairwise(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Anything else mteb may look up (e.g. model card fields) is the wrapped encoder's.
        return getattr(self._encoder, name)

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        from mteb.types import PromptType

        if prompt_type != PromptType.document:
            return self._encoder.encode(inputs, task_metadata=task_metadata, hf_split=hf_split,
                                        hf_subset=hf_subset, prompt_type=prompt_type, **kwargs)
        if not self.retain and not self._rows:  # nothing to reuse or keep: don't hash millions of documents
            fresh = self._encoder.encode(inputs, task_metadata=task_metadata, hf_split=hf_split,
                                         hf_subset=hf_subset, prompt_type=prompt_type, **kwargs)
            self.encoded_documents += len(inputs.dataset)
            return fresh
        dataset = inputs.dataset
        keys = _document_keys(dataset)
        missing = [i for i, key in enumerate(keys) if key not in self._rows]
        fresh = None
        if missing:
            loader = inputs if len(missing) == len(keys) else _select_rows(inputs, missing)
            fresh = _to_numpy(self._encoder.encode(loader, task_metadata=task_metadata, hf_split=hf_split,
                                                   hf_subset=hf_subset, prompt_type=prompt_type, **kwargs))
            self.encoded_documents += len(missing)
        self.reused_documents += len(keys) - len(missing)
        if fresh is not None and len(missing) == len(keys):
            if self.retain:
                self._rows.update(zip(keys, fresh))
            return fresh
        out = np.empty((len(keys), self._dimension(fresh)), dtype=self._dtype(fresh))
        fresh_rows = dict(zip(missing, fresh)) if fresh is not None else {}
        for i, key in enumerate(keys):
            row = fresh_rows.get(i)
            out[i] = row if row is not None else self._rows[key]
        if self.retain and fresh is not None:
            self._rows.update((keys[i], fresh[j]) for j, i in enumerate(missing))
        return out

    def release(self) -> None:
        """Forget every retained embedding (after the last task that shares the corpus)."""
        self._rows.clear()
        self.retain = False

    def _dimension(self, fresh) -> int:
        return fresh.shape[1] if fresh is not None else next(iter(self._rows.values())).shape[0]

    def _dtype(self, fresh):
        return fresh.dtype if fresh is not None else next(iter(self._rows.values())).dtype


def _select_rows(loader, indices: list[int]):
    """The same loader (batch size, collate function) over some of its rows."""
    from torch.utils.data import DataLoader

    return DataLoader(loader.dataset.select(indices), batch_size=loader.batch_size, collate_fn=loader.collate_fn,
                      num_workers=loader.num_workers, shuffle=False)


def _to_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu()
        if str(array.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            array = array.float()
        return array.numpy()
    return np.asarray(array)
