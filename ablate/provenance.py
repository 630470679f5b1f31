"""Versions of the packages that decide a trial's numbers, recorded with every trial and export."""

from __future__ import annotations

from importlib import metadata

PACKAGES = ("ablate", "mteb", "sentence-transformers", "transformers", "torch", "optuna", "polars")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
