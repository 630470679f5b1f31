"""``ablate data export``: the embedded world on disk, evaluation sets in BEIR layout."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ablate.beir import DatasetError, write_beir


def export_world(out: Path, seed: int = 0) -> list[Path]:
    """Write each evaluation set to ``out/<name>/`` and the triplets to ``out/train/triplets.jsonl``.

    The directory appears complete or not at all.
    """
    from ablate.profiles import MiniProfile

    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out}: already exists; choose a new output directory")
    world = MiniProfile(world_seed=seed).world
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, dataset in world.datasets.items():
            write_beir(dataset, staging / name)
        (staging / "train").mkdir()
        with (staging / "train" / "triplets.jsonl").open("w", encoding="utf-8") as handle:
            for anchor, positive, negative in world.train_triplets:
                handle.write(json.dumps({"anchor": anchor, "positive": positive, "negative": negative}) + "\n")
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / name for name in world.datasets] + [out / "train" / "triplets.jsonl"]
