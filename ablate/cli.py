"""Command line: parses arguments, calls the library, prints. No work happens here."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import click

# Before any library import: tqdm and the hub read these once, at import time. Hub access is the
# profile's business (mini never needs it; paper fetches pinned artifacts, see ablate.hub).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from ablate.beir import DatasetError  # noqa: E402
from ablate.cli_worker import run_and_print, scheduling_options  # noqa: E402
from ablate.plan import ASSUMED_INTERACTION_SD, ASSUMED_SD_QUERY_DIFF, ASSUMED_SEED_SD  # noqa: E402
from ablate.profiles import PROFILES, ProfileError, get_profile  # noqa: E402
from ablate.scheduler import StudyMismatch  # noqa: E402
from ablate.spec import SpecError, find_spec, list_specs  # noqa: E402
from ablate.storage import StorageError, open_storage, redact, resolve_url  # noqa: E402

USER_ERRORS = (SpecError, StorageError, StudyMismatch, DatasetError, ProfileError)


class _Group(click.Group):
    """Turns the library's user-facing errors into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)


storage_option = click.option("--storage", "storage_url", default=None, metavar="URL",
                              help="Study database URL (default: $ABLATE_STORAGE or sqlite:///ablate.db).")
profile_option = click.option("--profile", "profile_name", default="mini", show_default=True,
                              type=click.Choice(sorted(PROFILES)), help="Scale to run at.")
profile_setting_option = click.option(
    "--profile-option", "profile_options", multiple=True, metavar="KEY=VALUE",
    help="Override a profile field, e.g. subset_examples=1024 (recorded with the study).")


def _profile(name: str, options: tuple[str, ...]):
    fields = {f.name: f for f in dataclasses.fields(PROFILES[name])}
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in fields:
            raise ProfileError(f"--profile-option {option!r}: expected KEY=VALUE with KEY one of "
                               f"{', '.join(sorted(fields))}")
        current = fields[key].default if fields[key].default is not dataclasses.MISSING else None
        try:
            parsed[key] = type(current)(value) if isinstance(current, (int, float)) else value
        except ValueError:
            raise ProfileError(f"--profile-option {option!r}: {value!r} is not a valid {type(current).__name__}") \
                from None
    return get_profile(name, **parsed)


@click.group(cls=_Group)
@click.version_option(package_name="ablate")
def main():
    """Controlled ablations for retrieval models, with seed-aware paired statistics."""
    from ablate._quiet import quiet_libraries

    quiet_libraries()


@main.group(invoke_without_command=True)
@click.pass_context
def studies(ctx):
    """List the studies in ./studies (or $ABLATE_STUDIES) with the question each answers."""
    if ctx.invoked_subcommand is None:
        for spec in list_specs():
            cells = len(spec.cells())
            click.echo(f"{spec.name:<24} {cells:>3} cells  {spec.question}")


@studies.command("show")
@click.argument("name")
def studies_show(name):
    """Print a study's question, settings and full trial grid."""
    from ablate.report import format_grid

    click.echo(format_grid(find_spec(name)))


@main.command()
@click.argument("study")
@profile_option
@profile_setting_option
@storage_option
@scheduling_options
@click.option("--dry-run", is_flag=True,
              help="Print the exact trials, data, model and dataset revisions, evaluation tasks and the cost plan; "
                   "fetch, train and write nothing.")
@click.option("--gpu", default="H100", show_default=True, help="GPU the cost plan assumes (with --dry-run).")
def run(study, profile_name, profile_options, storage_url, max_trials, checkpoints, checkpoint_budget_gb, quiet,
        heartbeat_interval, grace_period, max_retries, retry_failed, resume_dir, checkpoint_every, dry_run, gpu):
    """Run every missing or failed cell of STUDY (a name in studies/ or a .toml path)."""
    from ablate.progress import Progress

    spec = find_spec(study)
    profile = _profile(profile_name, profile_options)
    if dry_run:
        from ablate.plan import format_dry_run, plan_study

        click.echo(format_dry_run(spec, profile, plan_study(spec, profile, gpu=gpu)))
        return
    progress = Progress(quiet=quiet)
    progress.line(f"preparing the {profile.name} profile (model and datasets)")
    profile.prepare(spec.datasets_for(profile.name))
    url = resolve_url(storage_url)
    storage = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    progress.line(f"study {spec.name} ({profile.name} profile) in {redact(url)}: {len(spec.cells())} cells")
    run_and_print(spec, profile, storage, progress, create=True, max_trials=max_trials, checkpoints=checkpoints,
                  checkpoint_budget_gb=checkpoint_budget_gb, resume_dir=resume_dir, checkpoint_every=checkpoint_every,
                  max_retries=max_retries, retry_failed=retry_failed)


@main.command()
@click.argument("study")
@profile_option
@storage_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report (Markdown) to this file.")
def report(study, profile_name, storage_url, out):
    """Significance report for STUDY: per dataset and macro-average, each arm against the baseline."""
    from ablate.report import build_report

    spec = find_spec(study)
    storage = open_storage(resolve_url(storage_url), create=False)
    text = build_report(spec, profile_name, storage)
    click.echo(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(out)


@main.command()
@click.argument("study")
@profile_option
@profile_setting_option
@click.option("--gpu", default="H100", show_default=True, help="GPU to plan for (see ablate.cost.GPUS).")
@click.option("--mfu", type=click.FloatRange(min=0.01, max=1.0), default=None,
              help="Model FLOP utilisation to assume (default: calibrated on the reproduction's timing).")
@click.option("--sd-query-diff", type=click.FloatRange(min=0, min_open=True), default=ASSUMED_SD_QUERY_DIFF,
              show_default=True, help="Assumed SD over queries of the seed-averaged per-query difference (0..1).")
@click.option("--seed-sd", type=click.FloatRange(min=0), default=ASSUMED_SEED_SD, show_default=True,
              help="Assumed SD of a dataset mean over training seeds (0..1 scale).")
@click.option("--interaction-sd", type=click.FloatRange(min=0), default=ASSUMED_INTERACTION_SD, show_default=True,
              help="Assumed seed x query interaction SD (0..1 scale).")
@click.option("--storage", "storage_url", default=None, metavar="URL",
              help="Study database: finished trials there replace the modelled throughput with the measured one "
                   "(default: $ABLATE_STORAGE when it holds the study).")
def plan(study, profile_name, profile_options, gpu, mfu, sd_query_diff, seed_sd, interaction_sd, storage_url):
    """Cost plan for STUDY: cells, compute per cell and in total, disk, and the power its seeds give."""
    from ablate import plan as planning

    spec = find_spec(study)
    profile = _profile(profile_name, profile_options)
    measured = None
    if storage_url or os.environ.get("ABLATE_STORAGE"):
        try:
            storage = open_storage(resolve_url(storage_url), create=False)
        except StorageError:
            if storage_url:  # asked for by name: say it is missing; from the environment: plan without it
                raise
            storage = None
        measured = planning.measured_rates(storage, spec, profile) if storage is not None else None
    try:
        result = planning.plan_study(
            spec, profile, gpu=gpu, mfu=mfu, measured=measured, sd_query_diff=sd_query_diff, seed_sd=seed_sd,
            interaction_sd=interaction_sd)
    except ValueError as err:  # an unknown GPU name
        raise click.BadParameter(str(err), param_hint="--gpu") from None
    click.echo(planning.format_plan(result))


@main.command()
@click.argument("study")
@profile_option
@profile_setting_option
def fetch(study, profile_name, profile_options):
    """Download everything STUDY needs (model, training data, evaluation sets) into the local caches.

    Run it where the hub is reachable; later runs work offline (HF_HUB_OFFLINE=1) from the same HF_HOME.
    """
    spec = find_spec(study)
    profile = _profile(profile_name, profile_options)
    fetched = profile.fetch(spec.datasets_for(profile.name), progress=lambda text: click.echo(text, err=True))
    for label, path in fetched:
        click.echo(f"{label}: {path}")
    if not fetched:
        click.echo(f"{profile.name}: nothing to download; the model and data are built locally (done)")


@main.group()
def data():
    """The embedded world's datasets, and checks of BEIR-layout directories."""


@data.command("export")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New directory; one BEIR-layout subdirectory per dataset, plus train/triplets.jsonl.")
@click.option("--seed", default=0, show_default=True, help="World seed.")
def data_export(out, seed):
    """Write the embedded world in BEIR layout."""
    from ablate.world_export import export_world

    written = export_world(out, seed)
    for path in written:
        click.echo(str(path))


@data.command("check")
@click.argument("directory", type=click.Path(path_type=Path))
def data_check(directory):
    """Load a BEIR-layout DIRECTORY as an evaluation dataset and print its size."""
    from ablate.beir import read_beir

    ds = read_beir(directory)
    judged = len(ds.judged_queries)
    click.echo(f"{ds.name}: {len(ds.queries)} queries ({judged} judged), {len(ds.corpus)} documents, "
               f"{sum(len(r) for r in ds.qrels.values())} qrels")


from ablate.cli_results import register as _register_results  # noqa: E402
from ablate.cli_worker import register as register_worker  # noqa: E402

_register_results(main)
register_worker(main)

if __name__ == "__main__":
    main()
