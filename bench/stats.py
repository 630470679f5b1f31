"""Benchmarks for ablate.stats.

    python bench/stats.py                 # randomization vs scipy, full synthetic analysis
    python bench/stats.py --calibration   # also: large null simulation of the crossed test

1. ``paired(test="randomization")`` against ``scipy.stats.permutation_test`` (sign flips via
   permutation_type="samples", vectorized, batch=1000) at n = 10,000 queries, B = 10,000.
   Target: >= 5x faster, p-values within 3 Monte-Carlo SEs.
2. A full analysis of a synthetic 2^3 = 8-configuration x 5-seed x 9-dataset study with 20,000
   queries in all, B = 10,000, starting from the long polars table. Target: < 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablate.stats import (  # noqa: E402
    CrossedDesign,
    Family,
    contrast,
    contrast_by_dataset,
    factorial_effects,
    paired,
    seeds_needed,
    shapley_contrasts,
    tost,
    two_way_bootstrap,
    variance_components,
)
from ablate.stats.simulation import simulate_design  # noqa: E402


def bench_randomization(n: int = 10_000, B: int = 10_000) -> None:
    rng = np.random.default_rng(12345)
    a = rng.beta(2, 3, n)
    b = np.clip(a + rng.normal(0.0015, 0.12, n), 0, 1)

    t0 = time.perf_counter()
    ours = paired(a, b, "randomization", B=B, seed=1)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(y - x, axis=axis), permutation_type="samples",
        vectorized=True, batch=1000, n_resamples=B, rng=2,
    )
    t_scipy = time.perf_counter() - t0

    se = np.sqrt(ours.p_value * (1 - ours.p_value) / B)
    diff_se = np.sqrt(2) * se  # two independent Monte-Carlo estimates
    print(f"[randomization] n={n} B={B}")
    print(f"  ablate.stats.paired     : {t_ours:7.3f} s   p = {ours.p_value:.5f}  (MC SE {se:.5f})")
    print(f"  scipy permutation_test  : {t_scipy:7.3f} s   p = {ref.pvalue:.5f}")
    print(f"  speed-up                : {t_scipy / t_ours:7.1f}x  (target >= 5x)")
    print(f"  |p diff| / SE(diff)     : {abs(ours.p_value - ref.pvalue) / diff_se:7.2f}   "
          f"|p diff| / SE(p): {abs(ours.p_value - ref.pvalue) / se:.2f}  (target <= 3)")


def synthetic_study(seed: int = 7):
    factors = ["bs", "lr", "frac"]
    cells = {f"bs{x}-lr{y}-frac{z}": (x, y, z) for x, y, z in itertools.product((0, 1), repeat=3)}
    means = {c: 0.40 + 0.010 * v[0] + 0.004 * v[1] - 0.002 * v[2] + 0.003 * v[0] * v[1] for c, v in cells.items()}
    sizes = [500, 800, 1200, 1500, 2000, 2500, 3000, 3500, 5000]  # 20,000 queries in all
    datasets = {f"ds{i}": q for i, q in enumerate(sizes)}
    design = simulate_design(means, n_seeds=5, n_queries=datasets, seed=seed)
    return design.to_table(), cells, factors


def bench_full_analysis(B: int = 10_000) -> None:
    table, cells, factors = synthetic_study()
    timings = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    design = CrossedDesign.from_table(table)
    timings["pivot long table"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    effects = factorial_effects(cells, factors)
    phis = shapley_contrasts(cells, factors)
    gain = {"bs1-lr1-frac1": 1.0, "bs0-lr0-frac0": -1.0}
    tables = {name: contrast_by_dataset(design, w) for name, w in {**effects, **{f"phi_{k}": v for k, v in phis.items()}, "gain": gain}.items()}
    timings["crossed contrasts (11 x (9 datasets + macro))"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    macro = {f: tables[f"phi_{f}"].row(-1, named=True) for f in factors}
    confirmatory = Family("Shapley values on the macro-average", kind="confirmatory").adjust(
        [macro[f]["p_value"] for f in factors], labels=factors)
    per_ds = [(f, row) for f in factors for row in tables[f"phi_{f}"].head(-1).iter_rows(named=True)]
    exploratory = Family("Shapley values per dataset", kind="exploratory").adjust(
        [r["p_value"] for _, r in per_ds], labels=[f"{f}@{r['dataset']}" for f, r in per_ds])
    equivalence = {f: tost(contrast(design, phis[f]), margin_points=1.0) for f in factors}
    comps = variance_components(design, gain)
    need = seeds_needed(0.005, comps)
    timings["multiplicity, TOST, variance components, power"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shares = two_way_bootstrap(
        design,
        lambda v: {f"share_{f}": v[f] / (v["bs"] + v["lr"] + v["frac"]) for f in factors},
        contrasts=phis, B=B, seed=0,
    )
    timings[f"two-way bootstrap of shares (B={B})"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    robustness = []
    for k in design.datasets:
        a = design.scores[k]["bs0-lr0-frac0"].mean(axis=0)
        b = design.scores[k]["bs1-lr1-frac1"].mean(axis=0)
        robustness.append(paired(a, b, "randomization", B=B, seed=0).p_value)
    timings[f"query-level randomization per dataset (9 x B={B})"] = time.perf_counter() - t0
    total = time.perf_counter() - t_all

    print(f"[full analysis] {table.height:,} rows: 8 configs x 5 seeds x 9 datasets, "
          f"{sum(design.n_queries.values()):,} queries")
    for k, v in timings.items():
        print(f"  {k:<52s} {v:7.2f} s")
    print(f"  {'TOTAL':<52s} {total:7.2f} s  (target < 30 s)")
    print("  macro Shapley values (points), crossed 95% CI, Holm p, TOST(1pt) equivalent, share [95% CI]:")
    for i, f in enumerate(factors):
        m = macro[f]
        s = shares[f"share_{f}"]
        print(f"    {f:<5s} {100 * m['estimate']:+.3f} [{100 * m['ci_low']:+.3f}, {100 * m['ci_high']:+.3f}]  "
              f"p_holm={confirmatory['p_adjusted'][i]:.4f}  equiv={equivalence[f].equivalent!s:<5s} "
              f"share={s.estimate:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]")
    g = tables["gain"].row(-1, named=True)
    print(f"  total gain {100 * g['estimate']:+.3f} points, SE {100 * g['se']:.3f}, df {g['df']:.1f}; "
          f"exploratory BH rejections {int(exploratory['reject'].sum())}/{exploratory.height}; "
          f"seeds needed for 0.5 pt at 80%: {need}; min randomization p {min(robustness):.2g}")


def bench_calibration(n_studies: int = 20_000, S: int = 3, Q: int = 1000) -> None:
    rng = np.random.default_rng(99)
    rej_crossed = rej_query = cover = 0
    t0 = time.perf_counter()
    for _ in range(n_studies):
        u = rng.normal(0, 0.25, Q)
        arrays = {c: 0.4 + u + rng.normal(0, 0.08, Q) + rng.normal(0, 0.01, (S, 1)) + rng.normal(0, 0.08, (S, Q))
                  for c in ("A", "B")}
        d = CrossedDesign.from_arrays(arrays)
        r = contrast(d, {"B": 1, "A": -1})
        rej_crossed += r.p_value < 0.05
        cover += r.ci_low <= 0 <= r.ci_high
        rej_query += contrast(d, {"B": 1, "A": -1}, method="query-only").p_value < 0.05
    se = np.sqrt(0.05 * 0.95 / n_studies)
    print(f"[calibration] {n_studies} null studies, S={S}, Q={Q}, seed SD 1 point ({time.perf_counter() - t0:.1f} s)")
    print(f"  crossed rejection {rej_crossed / n_studies:.4f} (SE {se:.4f}), coverage {cover / n_studies:.4f}; "
          f"query-only rejection {rej_query / n_studies:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", action="store_true", help="also run the large null simulation")
    args = parser.parse_args()
    bench_randomization()
    bench_full_analysis()
    if args.calibration:
        bench_calibration()


if __name__ == "__main__":
    main()
