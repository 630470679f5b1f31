"""The settings a study may vary or hold fixed: their types, valid ranges and where they act.

A *training* setting changes the trained model; an *evaluation* setting only changes how a trained model
is scored. Study specs are validated against this table, so a typo is caught before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type
    phase: str  # "train" or "eval"
    allowed: str  # human description of valid values, used in error messages
    check: Callable[[Any], bool]
    help: str


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _positive_float(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < float(v) < 1


SETTINGS: dict[str, Setting] = {s.name: s for s in [
    Setting("per_device_batch", int, "train", "an integer >= 2", lambda v: _positive_int(v) and v >= 2,
            "triplets per device per forward pass; sets the in-batch negatives"),
    Setting("gradient_accumulation", int, "train", "an integer >= 1", _positive_int,
            "batches accumulated per optimizer update; adds samples per update, not negatives"),
    Setting("learning_rate", float, "train", "a number in (0, 1), e.g. 8e-5", _positive_float,
            "peak learning rate (linear warmup then linear decay)"),
    Setting("mini_batch_size", int, "train", "an integer >= 1", _positive_int,
            "CachedMNRL mini-batch: memory only, does not change the loss"),
    Setting("warmup_ratio", float, "train", "a number in [0, 1)",
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= float(v) < 1,
            "share of updates spent warming up"),
    Setting("epochs", int, "train", "an integer >= 1", _positive_int, "passes over the training examples"),
    Setting("train_set", str, "train", "'subset' or 'full'", lambda v: v in ("subset", "full"),
            "'subset': the official 1.25M-row subset (mini: the same share of the world); 'full': all rows"),
    Setting("max_seq_length", int, "train", "an integer >= 8", lambda v: _positive_int(v) and v >= 8,
            "token limit while training"),
    Setting("eval_max_seq_length", int, "eval", "an integer >= 8", lambda v: _positive_int(v) and v >= 8,
            "token limit while encoding evaluation queries and documents"),
    Setting("ignore_identical_ids", bool, "eval", "true or false", lambda v: isinstance(v, bool),
            "drop a document whose id equals the query id from its results (mteb's ArguAna protocol)"),
]}


def describe_allowed_keys() -> str:
    return ", ".join(sorted(SETTINGS))


def coerce(setting: Setting, value: Any) -> Any:
    """Normalise an accepted value (ints given for a float setting become floats)."""
    if setting.kind is float:
        return float(value)
    return value
