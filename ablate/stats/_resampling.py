"""Vectorized resampling kernels: sign flips, bootstrap index draws, multinomial counts.

No Python loop runs per resample; loops run per *chunk* of resamples so memory stays bounded
(a chunk holds ``chunk_rows * n`` small integers). All randomness comes from the numpy Generator
passed in, so a seed reproduces every number.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# About 16 MB of uint8 sign bits (or 8x that as float64 while multiplying) per chunk.
_TARGET_CELLS_PER_CHUNK = 10_000_000
MAX_EXACT_N = 20


def _chunks(total: int, n: int, max_rows: int | None = None) -> Iterator[tuple[int, int]]:
    rows = max(1, min(total, _TARGET_CELLS_PER_CHUNK // max(n, 1)))
    if max_rows is not None:
        rows = min(rows, max_rows)
    for start in range(0, total, rows):
        yield start, min(total, start + rows)


def sign_flip_sums(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of randomly sign-flipped ``d``: one value per resample, each sign +-1 with prob 1/2.

    Signs are drawn as random bits (8 per random byte); the flipped sum is
    ``sum(d) - 2 * bits @ d``, a matrix-vector product per chunk.
    """
    n = d.shape[0]
    total = d.sum()
    out = np.empty(n_resamples, dtype=np.float64)
    row_bytes = (n + 7) // 8
    for lo, hi in _chunks(n_resamples, n):
        raw = np.frombuffer(rng.bytes((hi - lo) * row_bytes), dtype=np.uint8).reshape(hi - lo, row_bytes)
        bits = np.unpackbits(raw, axis=1, count=n)
        out[lo:hi] = total - 2.0 * (bits.astype(np.float64) @ d)
    return out


def all_sign_flip_sums(d: np.ndarray) -> np.ndarray:
    """Sums of ``d`` under every one of the 2**n sign patterns (exact randomization distribution)."""
    n = d.shape[0]
    if n > MAX_EXACT_N:
        raise ValueError(f"exact enumeration is limited to n <= {MAX_EXACT_N} queries, got n = {n}")
    n_patterns = 1 << n
    total = d.sum()
    out = np.empty(n_patterns, dtype=np.float64)
    shifts = np.arange(n, dtype=np.int64)
    for lo, hi in _chunks(n_patterns, n):
        codes = np.arange(lo, hi, dtype=np.int64)
        bits = ((codes[:, None] >> shifts) & 1).astype(np.float64)
        out[lo:hi] = total - 2.0 * (bits @ d)
    return out


def bootstrap_means(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``d`` over ``n_resamples`` ordinary bootstrap samples (index draws with replacement)."""
    n = d.shape[0]
    out = np.empty(n_resamples, dtype=np.float64)
    for lo, hi in _chunks(n_resamples, n):
        idx = rng.integers(0, n, size=(hi - lo, n))
        out[lo:hi] = d[idx].mean(axis=1)
    return out


def multinomial_counts(n: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """A (rows, n) float64 matrix; each row counts how often each of n items is drawn in n draws
    with replacement (i.e. Multinomial(n, 1/n) bootstrap weights)."""
    idx = rng.integers(0, n, size=(rows, n))
    idx += (np.arange(rows, dtype=idx.dtype) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def chunk_rows(n: int, total: int) -> Iterator[tuple[int, int]]:
    """Public face of the chunking rule, for callers that build their own per-chunk draws."""
    return _chunks(total, n)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of the finite ``values``."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return float(lo), float(hi)
