import subprocess
import sys

import pytest

from ablate.spec import SpecError, load_spec, parse_spec
from conftest import REPO, TINY_SPEC, write_spec


def _spec_text(**replace):
    text = TINY_SPEC.format(name="tiny", datasets='"factoid"')
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def test_shipped_batch_size_spec_loads_with_six_cells():
    spec = load_spec(REPO / "studies" / "batch-size.toml")
    assert spec.factors == {"per_device_batch": [16, 512]}
    assert spec.fixed["learning_rate"] == 8e-5
    assert len(spec.cells()) == 2 * len(spec.seeds)
    assert spec.metric == "ndcg_at_10"


@pytest.mark.parametrize("old,new,expected", [
    ("seeds = [0, 1]", "seeds = [0, 1]\ncolour = 3", "colour: unknown key"),
    ("per_device_batch = [8, 32]", "per_device_batch = [8]", "factors.per_device_batch: has 1 level"),
    ("per_device_batch = [8, 32]", "per_device_batch = [8, \"big\"]", "factors.per_device_batch: invalid value 'big'"),
    ("per_device_batch = [8, 32]", "batch = [8, 32]", "factors.batch: unknown setting 'batch'"),
    ("learning_rate = 8e-5", "learning_rate = 5", "fixed.learning_rate: invalid value 5"),
    ("learning_rate = 8e-5", "ignore_identical_ids = \"yes\"", "fixed.ignore_identical_ids: invalid value 'yes'"),
    ("seeds = [0, 1]", "seeds = [0, 0]", "seeds: duplicate seeds"),
    ("seeds = [0, 1]", "seeds = 3", "seeds: invalid value 3"),
    ("mini = [", "laptop = [", "datasets.laptop: unknown profile"),
])
def test_invalid_specs_name_file_key_and_allowed_values(tmp_path, old, new, expected):
    path = write_spec(tmp_path, "tiny", _spec_text(**{old: new}))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_name_must_match_file(tmp_path):
    path = write_spec(tmp_path, "other", _spec_text())
    with pytest.raises(SpecError, match="differs from the file name"):
        load_spec(path)


def test_spec_with_metric_outside_the_allowed_list():
    data = {"name": "x", "question": "q?", "seeds": [0], "factors": {"per_device_batch": [2, 4]},
            "datasets": {"mini": ["factoid"]}, "metric": "ndcg_at_5"}
    with pytest.raises(SpecError, match="metric: invalid value 'ndcg_at_5'; allowed: ndcg_at_10"):
        parse_spec(data, "x.toml")


def test_cli_rejects_bad_spec_with_exit_2_and_writes_nothing(tmp_path):
    path = write_spec(tmp_path, "tiny", _spec_text(**{"per_device_batch = [8, 32]": "per_device_batch = [8]"}))
    db = tmp_path / "study.db"
    result = subprocess.run([sys.executable, "-m", "ablate.cli", "run", str(path), "--storage", f"sqlite:///{db}"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {path}: factors.per_device_batch: has 1 level; a factor needs at least two levels "
                     "(put a single value under [fixed])"]
    assert not db.exists()


def test_cli_lists_and_shows_studies():
    listing = subprocess.run([sys.executable, "-m", "ablate.cli", "studies"], capture_output=True, text=True,
                             cwd=REPO)
    assert listing.returncode == 0
    assert "batch-size" in listing.stdout and "512" in listing.stdout
    shown = subprocess.run([sys.executable, "-m", "ablate.cli", "studies", "show", "batch-size"],
                           capture_output=True, text=True, cwd=REPO)
    assert shown.returncode == 0
    assert "| 1 | 16" in shown.stdout.replace("  ", " ") or "16" in shown.stdout
    assert "1023" in shown.stdout and "2442" in shown.stdout  # negatives per query, updates at batch 512


def test_cli_unknown_study_is_one_line_exit_2():
    result = subprocess.run([sys.executable, "-m", "ablate.cli", "studies", "show", "nope"], capture_output=True,
                            text=True, cwd=REPO)
    assert result.returncode == 2
    assert "no study named 'nope'; known studies: batch-size" in result.stderr
