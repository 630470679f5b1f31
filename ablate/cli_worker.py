"""Command line for ``ablate worker``: join a study from any machine and run cells until none is left.

``register(main)`` adds the command to the ``ablate`` group; ``scheduling_options`` are the liveness and
retry options that ``ablate run`` shares. Parse and print only: the work is ``ablate.scheduler.run_study``.
Every user error is one line on stderr and exit code 2; storage URLs are printed with the password hidden
and passed to worker processes through the environment, never on a command line.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from ablate.profiles import PROFILES
from ablate.scheduler import DEFAULT_MAX_RETRIES

_SCHEDULING_OPTIONS = [
    click.option("--heartbeat-interval", type=click.IntRange(min=1), default=20, show_default=True,
                 help="Seconds between a running trial's heartbeats."),
    click.option("--grace-period", type=click.IntRange(min=2), default=90, show_default=True,
                 help="Seconds without a heartbeat after which a trial's worker is presumed dead and its cell "
                      "returns to the queue."),
    click.option("--max-retries", type=click.IntRange(min=0), default=DEFAULT_MAX_RETRIES, show_default=True,
                 help="Times a cell whose trial raised an error is retried before it is reported failed "
                      "(configuration errors are never retried automatically)."),
    click.option("--retry-failed", is_flag=True,
                 help="Retry the cells reported failed (their retry counts start again)."),
    click.option("--resume-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Where training checkpoints live so a retried cell resumes mid-training; share it between "
                      "machines to resume anywhere (default: $ABLATE_RESUME_DIR or .ablate/resume)."),
    click.option("--checkpoint-every", type=click.IntRange(min=0), default=200, show_default=True,
                 help="Optimizer steps between training checkpoints (only the latest is kept); 0: none."),
    click.option("--max-trials", type=int, default=None, help="Stop after this many trials (the rest stay queued)."),
    click.option("--checkpoints", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Where trained models are kept for reuse by evaluation-only cells "
                      "(default: $ABLATE_CHECKPOINTS or .ablate/trained)."),
    click.option("--checkpoint-budget-gb", type=click.FloatRange(min=0), default=2.0, show_default=True,
                 help="Disk budget of the trained-model store; least recently used models are removed beyond it."),
    click.option("--quiet", is_flag=True, help="No progress output."),
]


def scheduling_options(command):
    """Adds the heartbeat, retry, resume, model-store and output options (shared by ``run`` and ``worker``)."""
    for option in reversed(_SCHEDULING_OPTIONS):
        command = option(command)
    return command


def make_runner(checkpoints: Path | None, checkpoint_budget_gb: float, resume_dir: Path | None,
                checkpoint_every: int):
    """The trial function: train (resuming from a checkpoint of the same cell if any, or reusing a stored
    model of the same training run), evaluate."""
    from ablate.checkpoints import ModelStore
    from ablate.trial import run_trial

    models = ModelStore(checkpoints or Path(os.environ.get("ABLATE_CHECKPOINTS", ".ablate/trained")),
                        budget_bytes=int(checkpoint_budget_gb * 1024**3))
    root = resume_dir or Path(os.environ.get("ABLATE_RESUME_DIR", ".ablate/resume"))
    return functools.partial(run_trial, models=models, resume_root=root, checkpoint_every=checkpoint_every)


def run_and_print(spec, profile, storage, progress, *, create: bool, max_trials, checkpoints, checkpoint_budget_gb,
                  resume_dir, checkpoint_every, max_retries, retry_failed) -> None:
    """Work the study's queue in this process, print the summary; exit 1 if a cell failed for good."""
    from ablate.progress import duration
    from ablate.scheduler import run_study

    summary = run_study(spec, profile, storage, progress, max_trials=max_trials, create=create,
                        runner=make_runner(checkpoints, checkpoint_budget_gb, resume_dir, checkpoint_every),
                        max_retries=max_retries, retry_failed=retry_failed,
                        warn=lambda text: click.echo(f"warning: {text}", err=True))
    click.echo(f"{summary.study}: ran {summary.ran} trial(s) in {duration(summary.seconds)}; "
               f"{summary.already_complete} were already complete; {len(summary.failed)} cell(s) failed")
    for label, message in summary.failed:
        click.echo(f"  failed: {label}: {message} (retry with --retry-failed)")
    if summary.failed:
        sys.exit(1)


def _devices(workers: int | None, gpus: str | None) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each worker process (None: leave it as it is)."""
    from ablate.worker import gpu_ids

    if workers is not None and gpus is not None:
        raise click.UsageError("give --workers or --gpus, not both (--gpus starts one worker per GPU)")
    if gpus is None:
        return [None] * (workers or 1)
    try:
        return gpu_ids(gpus)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--gpus") from None


def _child_argv(ctx: click.Context) -> list[str]:
    """This command line for one worker process: without the fan-out, --create, --retry-failed and the URL.

    The parent has already created the study and reset retry counts once; the URL (which may hold a
    password) travels in ``$ABLATE_STORAGE`` so that it never shows in a process list.
    """
    args = [sys.executable, "-m", "ablate.cli_worker", "worker", ctx.params["study"]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if not isinstance(param, click.Option) or value in (None, False, ()) or param.name in (
                "workers", "gpus", "create", "retry_failed", "storage_url"):
            continue
        if param.is_flag:
            args.append(param.opts[0])
        else:
            for item in value if param.multiple else [value]:
                args += [param.opts[0], str(item)]
    return args


def _storage_errors(command):
    """A database that fails mid-run is one redacted line and exit code 2, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from sqlalchemy.exc import SQLAlchemyError

        from ablate.storage import redact_text

        try:
            return command(*args, **kwargs)
        except SQLAlchemyError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            click.echo(f"error: storage error: {redact_text(first)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; the running trial was returned to the queue", err=True)
            sys.exit(130)

    return wrapper


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("study")
    @click.option("--profile", "profile_name", default="mini", show_default=True,
                  type=click.Choice(sorted(PROFILES)), help="Scale to run at.")
    @click.option("--profile-option", "profile_options", multiple=True, metavar="KEY=VALUE",
                  help="Override a profile field (must match the values the study was created with).")
    @click.option("--storage", "storage_url", default=None, metavar="URL",
                  help="Study database URL (default: $ABLATE_STORAGE or sqlite:///ablate.db); PostgreSQL "
                       "for workers on several machines.")
    @click.option("--create", is_flag=True, help="Create the study if the database does not hold it yet.")
    @click.option("--workers", type=click.IntRange(min=1), default=None,
                  help="Worker processes on this machine (default 1).")
    @click.option("--gpus", default=None, metavar="IDS",
                  help="One worker process per GPU, e.g. 0,1 or all (sets CUDA_VISIBLE_DEVICES for each).")
    @scheduling_options
    @click.pass_context
    @_storage_errors
    def worker(ctx, study, profile_name, profile_options, storage_url, create, workers, gpus, heartbeat_interval,
               grace_period, max_retries, retry_failed, resume_dir, checkpoint_every, max_trials, checkpoints,
               checkpoint_budget_gb, quiet):
        """Join STUDY's queue: take the next cell nobody holds, run it, store it, repeat until none is left.

        Any number of workers on any number of machines share one study database and run each cell once.
        A worker whose trial dies is noticed by the others (heartbeats) and its cell runs again.
        """
        from ablate.cli import _profile
        from ablate.progress import Progress
        from ablate.scheduler import open_study, retry_failed_cells
        from ablate.spec import find_spec
        from ablate.storage import open_storage, redact, resolve_url
        from ablate.worker import interrupt_on_sigterm, run_processes

        devices = _devices(workers, gpus)
        if len(devices) == 1 and devices[0] is not None:  # before anything can start CUDA
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[0]
        spec = find_spec(study)
        url = resolve_url(storage_url)
        storage = open_storage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        profile = _profile(profile_name, profile_options)
        progress = Progress(quiet=quiet)
        # Before the study is opened: preparing pins what a profile resolves (the paper training data's commit).
        profile.prepare(spec.datasets_for(profile.name))
        opened = open_study(storage, spec, profile, create=create)
        progress.line(f"study {opened.study_name} in {redact(url)}: {len(spec.cells())} cells")
        if len(devices) > 1:
            if retry_failed:
                retry_failed_cells(opened)
            sys.exit(run_processes(_child_argv(ctx), devices, env={"ABLATE_STORAGE": url}))
        interrupt_on_sigterm()
        run_and_print(spec, profile, storage, progress, create=False, max_trials=max_trials,
                      checkpoints=checkpoints, checkpoint_budget_gb=checkpoint_budget_gb, resume_dir=resume_dir,
                      checkpoint_every=checkpoint_every, max_retries=max_retries, retry_failed=retry_failed)


if __name__ == "__main__":  # a worker process started by `ablate worker --workers/--gpus`
    from ablate.cli import main as _main

    if "worker" not in _main.commands:
        register(_main)
    _main()
