import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache of tiny base models for the whole session (building one takes a few seconds)."""
    return tmp_path_factory.mktemp("ablate-cache")


@pytest.fixture(scope="session")
def small_profile(model_cache):
    from ablate.profiles import MiniProfile

    return MiniProfile(subset_examples=64, cache_dir=model_cache)


def write_spec(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(body)
    return path


TINY_SPEC = """
name = "{name}"
question = "Does a larger per-device batch help at this tiny scale?"
seeds = [0, 1]

[factors]
per_device_batch = [8, 32]

[fixed]
learning_rate = 8e-5

[datasets]
mini = [{datasets}]
"""
