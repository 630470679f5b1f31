"""Published NDCG@10 numbers of the study behind ablate (paper and reproduction), kept as data with sources."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

_DATA = Path(__file__).parent / "data" / "published.toml"


@cache
def published() -> dict:
    return tomllib.loads(_DATA.read_text(encoding="utf-8"))


def values(source: str, size: str = "base") -> dict[str, float]:
    """NDCG@10 x100 per dataset for ``source`` ('paper' or 'reproduction') and ``size`` ('base', 'large')."""
    data = published()
    try:
        return dict(data[source][size])
    except KeyError:
        raise KeyError(f"no published values for {source!r} {size!r}; have: "
                       f"{', '.join(f'{s}.{m}' for s in ('paper', 'reproduction') for m in data.get(s, {}))}") from None


def citation(source: str) -> str:
    return published()["sources"][source]
