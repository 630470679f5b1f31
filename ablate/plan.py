"""What a study will run and what it will cost, before anything runs (``ablate plan``, ``ablate run --dry-run``).

A plan lists every cell with the training run it implies, estimates compute per cell and in total, the
disk the trained-model store and resumable checkpoints need, and the smallest differences the seeds and
queries can resolve. Estimates come from the profile's stated cost basis (``ablate.cost``: FLOPs per
token, a GPU's peak, a calibrated utilisation) unless the study database already holds finished trials
of the same profile, whose measured seconds per training example and per evaluation then take over.
Nothing here touches the network, trains, or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from ablate import cost
from ablate.cost import CostBasis, EvalSet
from ablate.progress import duration
from ablate.settings import SETTINGS
from ablate.spec import Cell, StudySpec
from ablate.tables import markdown_table

# Assumed variance of per-query differences and of training seeds, when the study has no data yet
# (0..1 scale). Query-level SD of paired NDCG@10 differences is typically 0.10-0.20 between two
# fine-tuned dense retrievers; 0.5 points of seed SD on a dataset mean is a middle value for one epoch.
ASSUMED_SD_QUERY_DIFF = 0.15
ASSUMED_SEED_SD = 0.005
ASSUMED_INTERACTION_SD = 0.10


@dataclass(frozen=True)
class Measured:
    """Rates measured on a study's finished trials of the same profile settings.

    ``seconds_per_example`` is the median over all trained trials; ``by_batch`` the same per per-device
    batch (on a GPU the batch changes the rate), used for cells whose batch was measured.
    """

    seconds_per_example: float | None
    seconds_per_evaluation: float | None
    trials: int
    done_cells: frozenset[str] = frozenset()
    by_batch: dict[int, float] = field(default_factory=dict)
    devices: tuple[str, ...] = ()

    def train_seconds_per_example(self, per_device_batch: int) -> float | None:
        return self.by_batch.get(per_device_batch, self.seconds_per_example)


@dataclass(frozen=True)
class CellCost:
    cell: Cell
    train_set: str
    examples: int
    trains: bool            # False: an earlier cell trains the same model (evaluation settings only differ)
    train_hours: float
    eval_hours: float
    done: bool = False

    @property
    def hours(self) -> float:
        return self.train_hours + self.eval_hours


@dataclass(frozen=True)
class PowerRow:
    dataset: str
    queries: int
    mde_points: float       # smallest true difference detected with 80 % power at alpha 0.05
    power_1pt: float        # power for a 1-point difference


@dataclass
class StudyPlan:
    spec: StudySpec
    profile: str
    device: str
    unit: str                # "GPU-hours" or "CPU-hours"
    cells: list[CellCost]
    eval_sets: list[EvalSet]
    disk: dict[str, float]   # name -> GiB
    power: list[PowerRow]
    assumptions: list[str] = field(default_factory=list)
    source: str = "model"

    @property
    def total_hours(self) -> float:
        return sum(c.hours for c in self.cells)

    @property
    def remaining_hours(self) -> float:
        return sum(c.hours for c in self.cells if not c.done)


def training_identity(spec: StudySpec, cell: Cell, defaults: dict) -> tuple:
    """What decides the trained model: the training-phase settings and the seed (evaluation ones excluded)."""
    settings = {**defaults, **spec.settings_for(cell.arm)}
    return (tuple(sorted((k, repr(v)) for k, v in settings.items()
                         if SETTINGS.get(k) is None or SETTINGS[k].phase == "train")), cell.seed)


def plan_study(spec: StudySpec, profile, *, gpu: str = "H100", mfu: float | None = None,
               measured: Measured | None = None, sd_query_diff: float = ASSUMED_SD_QUERY_DIFF,
               seed_sd: float = ASSUMED_SEED_SD, interaction_sd: float = ASSUMED_INTERACTION_SD) -> StudyPlan:
    """Cost, disk and power of every cell of ``spec`` on ``profile`` (no network, nothing written)."""
    from ablate.profiles import DEFAULT_SETTINGS

    names = spec.datasets_for(profile.name)
    basis: CostBasis = profile.cost_basis()
    eval_sets: list[EvalSet] = profile.eval_sets(names)
    device = cost.get_gpu(gpu) if basis.shape is not None else None
    mfu = cost.DEFAULT_MFU if mfu is None else mfu
    assumptions = [basis.basis_note] if basis.basis_note else []
    source = "model"
    if measured and measured.seconds_per_example is not None:
        on = f" on {', '.join(measured.devices)}" if measured.devices else ""
        source = f"measured rates of {measured.trials} finished trial(s){on}"
    eval_hours_at: dict[int, float] = {}
    seen: set[tuple] = set()
    cells = []
    for cell in spec.cells():
        settings = {**DEFAULT_SETTINGS, **spec.settings_for(cell.arm)}
        examples = basis.train_rows[settings["train_set"]] * settings["epochs"]
        identity = training_identity(spec, cell, DEFAULT_SETTINGS)
        trains = identity not in seen
        seen.add(identity)
        rate = measured.train_seconds_per_example(settings["per_device_batch"]) if measured else None
        if rate is not None:
            train_h = examples * rate / 3600
        elif basis.seconds_per_triplet is not None:
            train_h = examples * basis.seconds_per_triplet / 3600
        else:
            flops = cost.training_flops(basis.shape, examples, basis.tokens_per_triplet, basis.train_seq_len)
            train_h = cost.gpu_hours(flops, device, mfu)
        if measured and measured.seconds_per_evaluation:
            eval_h = measured.seconds_per_evaluation / 3600
        else:
            max_len = min(settings.get("eval_max_seq_length") or basis.max_seq_len, basis.max_seq_len)
            if max_len not in eval_hours_at:
                eval_hours_at[max_len] = _evaluation_hours(basis, eval_sets, device, mfu, max_len)
            eval_h = eval_hours_at[max_len]
        cells.append(CellCost(cell, settings["train_set"], examples, trains, train_h if trains else 0.0, eval_h,
                              done=bool(measured and cell.key in measured.done_cells)))
    disk = _disk(basis, cells, eval_sets)
    power = _power(eval_sets, len(spec.seeds), sd_query_diff, seed_sd, interaction_sd)
    assumptions.append(
        f"power: one arm against another (a factorial's main effects average more cells and resolve smaller "
        f"differences), crossed seeds x queries test, two-sided alpha 0.05 per row (the report's Holm/BH "
        f"adjustment across datasets needs more), {len(spec.seeds)} seeds per arm; assumed (0..1 scale): SD over "
        f"queries of the seed-averaged per-query difference {sd_query_diff:g} (--sd-query-diff), SD of a "
        f"dataset mean over seeds {seed_sd:g} (--seed-sd), seed x query interaction SD {interaction_sd:g} "
        f"(--interaction-sd); the macro row assumes a seed moves every dataset alike; estimate all three from a "
        f"pilot with ablate.stats.variance_components")
    if device is not None and (measured is None or measured.seconds_per_example is None):
        assumptions.append(f"{device.name}: {device.peak_bf16_tflops:g} TFLOP/s dense bf16 peak for training"
                           + (f", {device.peak_fp32_tflops:g} TFLOP/s fp32 for evaluation (fp32 as the official "
                              f"evaluation; --profile-option eval_precision=bf16 evaluates on the bf16 peak)"
                              if basis.eval_precision == "fp32" else ", bf16 evaluation")
                           + f", model FLOP utilisation {mfu:.2f}"
                           + (" (calibrated default)" if mfu == cost.DEFAULT_MFU else "")
                           + ", the same at every batch size (small per-device batches likely reach less; "
                             "measure with bench/train_throughput.py, or let finished trials replace the model)")
    unit = "GPU-hours" if device is not None else "CPU-hours"
    return StudyPlan(spec, profile.name, device.name if device else "cpu", unit, cells, eval_sets, disk, power,
                     assumptions, source)


def _evaluation_hours(basis: CostBasis, eval_sets: list[EvalSet], device, mfu: float, max_len: int) -> float:
    """Hours to evaluate one trained model on every set, texts cut at ``max_len`` tokens; a shared corpus
    is encoded once."""
    if basis.seconds_per_evaluation is not None:
        return basis.seconds_per_evaluation / 3600
    flops = 0.0
    groups_done: set[str] = set()
    for es in eval_sets:
        query_len = max(1.0, min(max_len, es.query_tokens))
        flops += cost.encoding_flops(basis.shape, es.queries, query_len, query_len)
        if es.corpus_group is not None and es.corpus_group in groups_done:
            continue
        if es.corpus_group is not None:
            groups_done.add(es.corpus_group)
        doc_len = max(1.0, min(max_len, es.document_tokens))
        flops += cost.encoding_flops(basis.shape, es.documents, doc_len, doc_len)
    return cost.gpu_hours(flops, device, mfu, basis.eval_precision)


# Bytes of text per token (English, ModernBERT's tokenizer) and copies kept per dataset (the hub's parquet
# plus datasets' Arrow cache), for the disk estimate of the data caches.
BYTES_PER_TOKEN = 4.5
DATA_COPIES = 2


def _disk(basis: CostBasis, cells: list[CellCost], eval_sets: list[EvalSet]) -> dict[str, float]:
    gib = 1024 ** 3
    if basis.shape is None:
        return {}
    trained = sum(1 for c in cells if c.trains)
    members: dict[str, list[EvalSet]] = {}
    for es in eval_sets:
        if es.corpus_group:
            members.setdefault(es.corpus_group, []).append(es)
    largest_group = max((max(es.documents for es in group) for group in members.values() if len(group) > 1),
                        default=0)
    train_rows = max(basis.train_rows.values()) + 1_000 if any(c.train_set == "full" for c in cells) \
        else max(basis.train_rows.values())
    eval_text = sum(es.documents * es.document_tokens + es.queries * es.query_tokens for es in eval_sets)
    return {
        "trained models kept for evaluation-only reuse (all)": trained * cost.checkpoint_bytes(basis.shape) / gib,
        "one resumable training checkpoint per running worker": cost.training_state_bytes(basis.shape) / gib,
        "training data (all rows: hub parquet + Arrow cache, ~4.5 bytes/token)":
            max(train_rows, basis.train_rows.get("full", 0)) * basis.tokens_per_triplet * BYTES_PER_TOKEN
            * DATA_COPIES / gib,
        "evaluation sets (each copy of a shared corpus counted; parquet + Arrow)":
            eval_text * BYTES_PER_TOKEN * DATA_COPIES / gib,
        "shared corpus embeddings held in RAM while evaluating (fp32)": largest_group * basis.shape.hidden * 4 / gib,
    }


def _power(eval_sets: list[EvalSet], seeds: int, sd_query_diff: float, seed_sd: float,
           interaction_sd: float) -> list[PowerRow]:
    from ablate.stats import mde_crossed, power_crossed

    if seeds < 3:
        return []
    rows = []
    known = [es for es in eval_sets if es.queries >= 2]
    for es in known:
        components = _components(es.name, sd_query_diff ** 2, seed_sd ** 2, interaction_sd ** 2, es.queries, seeds)
        rows.append(PowerRow(es.name, es.queries, 100 * mde_crossed(components, n_seeds=seeds),
                             power_crossed(0.01, components, n_seeds=seeds).power))
    if len(known) > 1:
        # Macro-average over D sets: its query term is (1/D^2) sum sd^2 / Q_d, written as an effective
        # per-query variance over all Q queries; a seed moves every set, so the seed SD stays as it is.
        total = sum(es.queries for es in known)
        d = len(known)
        query_var = total * sum(sd_query_diff ** 2 / es.queries for es in known) / d ** 2
        interaction = total * sum(interaction_sd ** 2 / es.queries for es in known) / d ** 2
        components = _components("macro", query_var, seed_sd ** 2, interaction, total, seeds)
        rows.append(PowerRow("macro", total, 100 * mde_crossed(components, n_seeds=seeds),
                             power_crossed(0.01, components, n_seeds=seeds).power))
    return rows


def _components(name: str, query_var: float, seed_var: float, interaction_var: float, queries: int, seeds: int):
    from ablate.stats.crossed import VarianceComponents

    return VarianceComponents(query_var=query_var, sd_query_diff=query_var ** 0.5, seed_var=seed_var,
                              interaction_var=interaction_var, sum_w2=2.0, n_weighted_configs=2,
                              n_queries=queries, n_seeds=seeds, dataset=name)


def measured_rates(storage, spec: StudySpec, profile) -> Measured | None:
    """Seconds per training example (overall and per per-device batch) and per evaluation, from the
    study's COMPLETE trials; None when the database holds no such study or it ran with other profile
    settings (another model's throughput says nothing about this one's)."""
    import json

    import optuna

    from ablate.scheduler import study_name

    try:
        study = optuna.load_study(study_name=study_name(spec.name, profile.name), storage=storage)
    except KeyError:
        return None
    if study.user_attrs.get("profile") != json.loads(json.dumps(profile.describe())):
        return None
    trained: dict[int, list[float]] = {}
    evals, done, devices = [], set(), set()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        timings, controls = attrs.get("timings") or {}, attrs.get("controls") or {}
        if attrs.get("cell"):
            done.add(attrs["cell"])
        if (device := (attrs.get("provenance") or {}).get("device")):
            devices.add(device)
        if attrs.get("trained") and controls.get("training_examples_seen"):
            rate = timings.get("train_s", 0.0) / controls["training_examples_seen"]
            trained.setdefault(int(controls.get("per_device_batch", 0)), []).append(rate)
        if "eval_s" in timings:
            evals.append(timings["eval_s"])
    if not evals:
        return None
    every = [r for rates in trained.values() for r in rates]
    return Measured(median(every) if every else None, median(evals), len(evals), frozenset(done),
                    {batch: median(rates) for batch, rates in trained.items()}, tuple(sorted(devices)))


def format_plan(plan: StudyPlan) -> str:
    spec = plan.spec
    if plan.source == "model":
        where = f"times on one {plan.device} GPU" if plan.unit == "GPU-hours" else "times on the CPU"
        basis = f"{where}, estimated from the cost model"
    else:
        basis = f"times from the {plan.source}"
    out = [f"plan: {spec.name} on the {plan.profile} profile: {len(spec.arms())} arms x {len(spec.seeds)} seeds = "
           f"{len(plan.cells)} cells; {basis}"]
    factor_names = list(spec.factors)
    show_set = "train_set" not in spec.factors
    header = ["#", *factor_names, "seed", *(["train set"] if show_set else []), "examples", "trains", "train",
              "evaluate", "status"]
    rows = []
    for i, c in enumerate(plan.cells, start=1):
        arm = c.cell.arm.as_dict()
        rows.append([str(i), *(_fmt(arm[f]) for f in factor_names), str(c.cell.seed),
                     *([c.train_set] if show_set else []), f"{c.examples:,}",
                     "yes" if c.trains else "reuses model", duration(c.train_hours * 3600),
                     duration(c.eval_hours * 3600),
                     "done" if c.done else "to run"])
    out += ["", markdown_table(header, rows), ""]
    trained = sum(1 for c in plan.cells if c.trains)
    out.append(f"total: {plan.total_hours:.1f} {plan.unit} ({trained} training runs, {len(plan.cells)} evaluations); "
               f"still to run: {plan.remaining_hours:.1f} {plan.unit}")
    if plan.disk:
        out.append("disk and memory:")
        out += [f"  {name}: {size:.1f} GiB" for name, size in plan.disk.items()]
    if plan.power:
        out += ["", "power (smallest difference in NDCG@10 points found with 80 % power; power for a 1-point "
                    "difference):"]
        out.append(markdown_table(["dataset", "queries", "MDE (points)", "power at 1 point"],
                                  [[p.dataset, f"{p.queries:,}", f"{p.mde_points:.2f}", f"{p.power_1pt:.2f}"]
                                   for p in plan.power]))
    elif len(spec.seeds) < 3:
        out.append("power: needs at least 3 seeds per arm for the crossed seeds x queries test")
    if plan.assumptions:
        out += ["", "assumptions:"] + [f"  - {a}" for a in plan.assumptions]
    return "\n".join(out)


def format_dry_run(spec: StudySpec, profile, plan: StudyPlan) -> str:
    """Exactly what ``ablate run`` would do: trials, data, model and dataset revisions, tasks, then the plan."""
    from ablate.profiles import DEFAULT_SETTINGS
    from ablate.provenance import package_versions
    from ablate.train import controls

    out = [f"dry run: {spec.name} on the {profile.name} profile; nothing is fetched, trained or written", ""]
    out += [f"{key}: {value}" for key, value in profile.run_description().items()]
    versions = package_versions()
    out.append(f"evaluation through mteb {versions.get('mteb', '?')}:")
    out.append(markdown_table(
        ["dataset", "mteb task", "split", "source", "queries", "documents", "self-hits", "corpus"],
        [[es.name, es.task, es.split, es.source, f"{es.queries:,}" if es.queries else "?",
          f"{es.documents:,}" if es.documents else "?", es.self_hits,
          f"shared ({es.corpus_group}), encoded once per model"
          if es.corpus_group and sum(o.corpus_group == es.corpus_group for o in plan.eval_sets) > 1 else "own"]
         for es in plan.eval_sets]))
    out += ["", f"trials ({len(plan.cells)}):"]
    header = ["#", "cell", "per-device batch", "accumulation", "learning rate", "negatives/query", "samples/update",
              "updates", "examples"]
    rows = []
    for i, c in enumerate(plan.cells, start=1):
        settings = {**DEFAULT_SETTINGS, **spec.settings_for(c.cell.arm)}
        derived = controls(profile.training_config(settings, c.examples // settings["epochs"]))
        rows.append([str(i), c.cell.label, str(settings["per_device_batch"]), str(settings["gradient_accumulation"]),
                     f"{derived['learning_rate']:g}", str(derived["negatives_per_query"]),
                     str(derived["samples_per_update"]), f"{derived['optimizer_updates']:,}", f"{c.examples:,}"])
    out += [markdown_table(header, rows), "", format_plan(plan)]
    return "\n".join(out)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)
