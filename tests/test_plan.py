"""Cost plans: cells, training runs shared by evaluation-only cells, totals, measured rates, power."""

import dataclasses
import os
import subprocess
import sys

import pytest

from ablate import cost
from ablate.paper import PaperProfile
from ablate.plan import Measured, format_plan, plan_study
from ablate.spec import find_spec
from conftest import REPO


@pytest.fixture(scope="module")
def paper():
    return PaperProfile(model="answerdotai/ModernBERT-base")


def test_batch_size_plan_on_paper(paper):
    plan = plan_study(find_spec("batch-size"), paper, gpu="H100")
    assert len(plan.cells) == 6 and all(c.trains for c in plan.cells)
    assert plan.total_hours == pytest.approx(sum(c.train_hours + c.eval_hours for c in plan.cells))
    shape = cost.MODEL_SHAPES["answerdotai/ModernBERT-base"]
    expected_train = cost.gpu_hours(cost.training_flops(shape, 1_250_000, cost.MSMARCO_TOKENS_PER_TRIPLET,
                                                         cost.MSMARCO_ATTENTION_CONTEXT), cost.get_gpu("H100"),
                                    cost.DEFAULT_MFU)
    assert plan.cells[0].train_hours == pytest.approx(expected_train)
    slower = plan_study(find_spec("batch-size"), paper, gpu="A100-80GB")
    assert slower.total_hours > plan.total_hours


def test_eval_only_cells_do_not_train_again(paper):
    plan = plan_study(find_spec("eval-protocol"), paper)
    trains = [c for c in plan.cells if c.trains]
    assert len(trains) == len(find_spec("eval-protocol").seeds)  # one model per seed, evaluated four ways
    assert all(c.train_hours == 0 for c in plan.cells if not c.trains)
    assert all(c.eval_hours > 0 for c in plan.cells)


def test_shared_corpus_is_costed_once(paper):
    spec = find_spec("batch-size")
    both = plan_study(spec, paper).cells[0].eval_hours
    names = spec.datasets_for("paper")
    without = [n for n in names if n != "ClimateFEVER"]
    spec_without = type(spec)(**{**spec.__dict__, "datasets": {"paper": without}})
    # Climate-FEVER adds only its queries: its corpus is FEVER's, already encoded.
    assert both - plan_study(spec_without, paper).cells[0].eval_hours < 0.01 * both


def test_measured_rates_replace_the_model(paper):
    spec = find_spec("batch-size")
    measured = Measured(seconds_per_example=0.001, seconds_per_evaluation=1800.0, trials=2,
                        done_cells=frozenset({spec.cells()[0].key}))
    plan = plan_study(spec, paper, measured=measured)
    assert plan.cells[0].train_hours == pytest.approx(1_250_000 * 0.001 / 3600)
    assert plan.cells[0].eval_hours == pytest.approx(0.5)
    assert plan.cells[0].done and not plan.cells[1].done
    assert plan.remaining_hours == pytest.approx(plan.total_hours * 5 / 6)
    assert "times from the measured rates of 2 finished trial(s)" in format_plan(plan)


def test_measured_rates_per_batch(paper):
    spec = find_spec("batch-size")
    measured = Measured(seconds_per_example=0.002, seconds_per_evaluation=None, trials=1, by_batch={512: 0.001})
    plan = plan_study(spec, paper, measured=measured)
    hours = {c.cell.arm.as_dict()["per_device_batch"]: c.train_hours for c in plan.cells}
    assert hours[512] == pytest.approx(1_250_000 * 0.001 / 3600)
    assert hours[16] == pytest.approx(1_250_000 * 0.002 / 3600)  # not measured at 16: the overall median


def test_evaluation_cost_follows_each_cells_length_and_precision(paper):
    spec = find_spec("eval-protocol")
    plan = plan_study(spec, paper)
    by_length = {c.cell.arm.as_dict()["eval_max_seq_length"]: c.eval_hours for c in plan.cells}
    short, long = sorted(by_length)
    assert by_length[short] < by_length[long]
    fast = plan_study(spec, PaperProfile(model="base", eval_precision="bf16"))
    assert fast.cells[0].eval_hours < plan.cells[0].eval_hours / 10  # tensor-core bf16 vs plain fp32


def test_more_seeds_resolve_smaller_differences(paper):
    spec = find_spec("batch-size")
    three = {p.dataset: p for p in plan_study(spec, paper).power}
    five = {p.dataset: p for p in plan_study(type(spec)(**{**spec.__dict__, "seeds": [0, 1, 2, 3, 4]}), paper).power}
    assert five["macro"].mde_points < three["macro"].mde_points
    assert three["TRECCOVID"].mde_points > three["FEVER"].mde_points  # 50 queries vs 6,666
    assert 0 < three["FEVER"].power_1pt < 1


def test_mini_plan_uses_measured_cpu_rates(small_profile):
    plan = plan_study(find_spec("batch-size"), small_profile)
    assert plan.unit == "CPU-hours" and plan.device == "cpu"
    assert plan.cells[0].train_hours == pytest.approx(64 * 0.003 / 3600)


def test_cli_plan_and_unknown_gpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty"),
           "ABLATE_CACHE": str(tmp_path / "cache")}
    env.pop("ABLATE_STORAGE", None)
    ok = subprocess.run([sys.executable, "-m", "ablate.cli", "plan", "factorial", "--profile", "paper", "--gpu",
                         "H200"], capture_output=True, text=True, cwd=REPO, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "40 cells" in ok.stdout and "GPU-hours" in ok.stdout and "H200" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "ablate.cli", "plan", "batch-size", "--profile", "paper", "--gpu",
                          "TPU9"], capture_output=True, text=True, cwd=REPO, env=env)
    assert bad.returncode == 2 and "TPU9" in bad.stderr


from results_fixture import results_db  # noqa: E402,F401


def test_measured_rates_are_read_from_a_real_study(results_db):  # noqa: F811
    from ablate.plan import measured_rates
    from ablate.spec import find_spec as find
    from ablate.storage import open_storage

    spec = find(str(results_db.spec_path))
    storage = open_storage(results_db.url, create=False)
    measured = measured_rates(storage, spec, results_db.profile)
    assert measured.trials == 4 and measured.done_cells == frozenset(c.key for c in spec.cells())
    assert 0 < measured.seconds_per_example < 1 and measured.seconds_per_evaluation > 0
    assert set(measured.by_batch) == {8, 32} and measured.devices == ("cpu",)
    # Trials of other profile settings say nothing about this profile's throughput.
    other = dataclasses.replace(results_db.profile, subset_examples=128)
    assert measured_rates(storage, spec, other) is None
    plan = plan_study(spec, results_db.profile, measured=measured)
    assert plan.remaining_hours == 0 and plan.total_hours > 0
