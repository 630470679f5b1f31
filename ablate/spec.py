"""Study specs: declarative TOML files naming factors, fixed settings, seeds, datasets and the metric.

A spec is validated completely on load. Any problem raises ``SpecError`` whose message is one line
naming the file, the key and what is allowed, before anything touches a database.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.settings import SETTINGS, coerce, describe_allowed_keys

METRICS = ("ndcg_at_10", "mrr_at_10", "recall_at_100")
PROFILES = ("mini", "paper")
_TOP_KEYS = {"name", "question", "seeds", "metric", "factors", "fixed", "datasets", "notes"}


class SpecError(ValueError):
    """A study spec that cannot be used. ``str(err)`` is a single line for the user."""


@dataclass(frozen=True)
class Arm:
    """One configuration of the factors (a row of the design, before replication over seeds)."""

    levels: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.levels)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.levels)


@dataclass(frozen=True)
class Cell:
    """The unit of work: one arm trained and evaluated with one seed. Runs exactly once per study."""

    arm: Arm
    seed: int

    @property
    def key(self) -> str:
        return json.dumps({**self.arm.as_dict(), "seed": self.seed}, sort_keys=True)

    @property
    def label(self) -> str:
        return f"{self.arm.label}, seed={self.seed}"


@dataclass(frozen=True)
class StudySpec:
    name: str
    question: str
    factors: dict[str, list[Any]]
    fixed: dict[str, Any]
    seeds: list[int]
    metric: str
    datasets: dict[str, list[str]]
    path: str = ""
    notes: str = ""

    def arms(self) -> list[Arm]:
        names = list(self.factors)
        return [Arm(tuple(zip(names, combo))) for combo in itertools.product(*(self.factors[n] for n in names))]

    def cells(self) -> list[Cell]:
        return [Cell(arm, seed) for arm in self.arms() for seed in self.seeds]

    def settings_for(self, arm: Arm) -> dict[str, Any]:
        return {**self.fixed, **arm.as_dict()}

    def datasets_for(self, profile: str) -> list[str]:
        if profile not in self.datasets:
            raise SpecError(f"{self.path}: datasets.{profile}: missing; this study names datasets only for "
                            f"{', '.join(self.datasets)}")
        return self.datasets[profile]

    def fingerprint(self) -> str:
        """Hash of everything that defines the study's results (not its prose)."""
        payload = {"factors": self.factors, "fixed": self.fixed, "seeds": self.seeds, "metric": self.metric,
                   "datasets": self.datasets}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "question": self.question, "factors": self.factors,
                           "fixed": self.fixed, "seeds": self.seeds, "metric": self.metric,
                           "datasets": self.datasets, "notes": self.notes}, sort_keys=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fail(path: Path | str, key: str, message: str) -> SpecError:
    return SpecError(f"{path}: {key}: {message}")


def _check_setting(path, key: str, name: str, value: Any) -> Any:
    setting = SETTINGS.get(name)
    if setting is None:
        raise _fail(path, key, f"unknown setting {name!r}; allowed: {describe_allowed_keys()}")
    if not setting.check(value):
        raise _fail(path, key, f"invalid value {value!r}; allowed: {setting.allowed}")
    return coerce(setting, value)


def parse_spec(data: dict, path: Path | str = "<spec>") -> StudySpec:
    """Validate a spec already read from TOML (``path`` only labels errors)."""
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
    for required in ("name", "question", "seeds", "factors", "datasets"):
        if required not in data:
            raise _fail(path, required, "missing (a spec needs name, question, seeds, factors and datasets)")
    name = data["name"]
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise _fail(path, "name", f"invalid value {name!r}; allowed: letters, digits, '-' and '_'")
    if not isinstance(data["question"], str) or not data["question"].strip():
        raise _fail(path, "question", "must be a non-empty string stating what the study answers")

    seeds = data["seeds"]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise _fail(path, "seeds", f"invalid value {seeds!r}; allowed: a non-empty list of integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise _fail(path, "seeds", f"duplicate seeds in {seeds!r}; each replicate needs its own seed")

    metric = data.get("metric", "ndcg_at_10")
    if metric not in METRICS:
        raise _fail(path, "metric", f"invalid value {metric!r}; allowed: {', '.join(METRICS)}")

    factors_raw = data["factors"]
    if not isinstance(factors_raw, dict) or not factors_raw:
        raise _fail(path, "factors", "must be a table with at least one factor, e.g. per_device_batch = [16, 512]")
    factors: dict[str, list[Any]] = {}
    for fname, levels in factors_raw.items():
        key = f"factors.{fname}"
        if not isinstance(levels, list):
            raise _fail(path, key, f"invalid value {levels!r}; allowed: a list of at least two levels")
        if len(levels) < 2:
            raise _fail(path, key, f"has {len(levels)} level; a factor needs at least two levels "
                                   "(put a single value under [fixed])")
        checked = [_check_setting(path, key, fname, v) for v in levels]
        if len(set(map(repr, checked))) != len(checked):
            raise _fail(path, key, f"repeated level in {levels!r}; levels must be distinct")
        factors[fname] = checked

    fixed_raw = data.get("fixed", {})
    if not isinstance(fixed_raw, dict):
        raise _fail(path, "fixed", "must be a table of setting = value")
    fixed = {}
    for fname, value in fixed_raw.items():
        if fname in factors:
            raise _fail(path, f"fixed.{fname}", "is also a factor; a setting is either varied or fixed")
        fixed[fname] = _check_setting(path, f"fixed.{fname}", fname, value)

    datasets_raw = data["datasets"]
    if not isinstance(datasets_raw, dict) or not datasets_raw:
        raise _fail(path, "datasets", "must be a table mapping a profile (mini, paper) to a list of dataset names")
    datasets = {}
    for profile, names in datasets_raw.items():
        if profile not in PROFILES:
            raise _fail(path, f"datasets.{profile}", f"unknown profile; allowed: {', '.join(PROFILES)}")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise _fail(path, f"datasets.{profile}", "must be a non-empty list of dataset names or local paths")
        datasets[profile] = list(names)

    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise _fail(path, "notes", "must be a string")
    return StudySpec(name=name, question=data["question"].strip(), factors=factors, fixed=fixed, seeds=list(seeds),
                     metric=metric, datasets=datasets, path=str(path), notes=notes)


def load_spec(path: str | Path) -> StudySpec:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such study file") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from None
    spec = parse_spec(data, path)
    if spec.name != path.stem:
        raise _fail(path, "name", f"{spec.name!r} differs from the file name; allowed: {path.stem!r}")
    return spec


def studies_dir() -> Path:
    """Where ``ablate`` looks for specs: ``$ABLATE_STUDIES``, else ``./studies``, else the repository's."""
    import os

    env = os.environ.get("ABLATE_STUDIES")
    if env:
        return Path(env)
    local = Path.cwd() / "studies"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / "studies"


def find_spec(name_or_path: str) -> StudySpec:
    """A study by name (looked up in ``studies_dir()``) or by path to a ``.toml`` file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        return load_spec(candidate)
    directory = studies_dir()
    path = directory / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.toml"))) or "none"
        raise SpecError(f"{path}: no study named {name_or_path!r}; known studies: {known}")
    return load_spec(path)


def list_specs() -> list[StudySpec]:
    return [load_spec(p) for p in sorted(studies_dir().glob("*.toml"))]
