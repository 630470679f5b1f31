"""Command line for reading results: ``query``, ``status``, ``export``, ``compare``. Parse and print only.

``register(main)`` adds the commands to the ``ablate`` group. Every user error (unknown study, trial,
dataset, view or column; bad SQL; a storage that cannot be opened) is one line on stderr and exit code 2,
and nothing is written; storage URLs are always printed with the password hidden.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path

import click

from ablate.storage import StorageError, redact_text

TABLE_FORMATS = ("table", "csv", "json", "parquet")


def _user_errors(command):
    """One line on stderr and exit code 2 for what the user can fix; never a traceback or a password."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from sqlalchemy.exc import SQLAlchemyError

        from ablate.beir import DatasetError
        from ablate.query import QueryError

        try:
            return command(*args, **kwargs)
        except (QueryError, StorageError, DatasetError) as err:
            message = str(err)
        except SQLAlchemyError as err:
            message = f"storage error: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
        except OSError as err:
            message = f"{getattr(err, 'filename', None) or ''}: {err.strerror or err}".lstrip(": ")
        click.echo(f"error: {redact_text(message)}", err=True)
        sys.exit(2)

    return wrapper


def _storage_option(f):
    return click.option("--storage", "storage_url", default=None, metavar="URL",
                        help="Study database URL (default: $ABLATE_STORAGE or sqlite:///ablate.db).")(f)


def _write_atomically(out: Path, write) -> None:
    """``write(tmp_path)`` then rename onto ``out``, so a failure leaves no partial file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def render_table(frame, max_rows: int) -> str:
    """A Markdown table (pastes into papers and READMEs), with a note when rows were left out."""
    import polars as pl

    with pl.Config(tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=max_rows, tbl_cols=-1, tbl_width_chars=30_000, fmt_str_lengths=120):
        text = str(frame)
    if frame.height > max_rows:
        text += f"\n({frame.height} rows; showing {max_rows}: use --max-rows, or --format csv/json/parquet)"
    return text


def _query_output(frame, fmt: str, out: Path | None, max_rows: int) -> None:
    import polars as pl

    from ablate.query import QueryError

    if fmt == "parquet" and out is None:
        raise QueryError("--format parquet needs --out FILE (Parquet is binary)")
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    if fmt == "csv" and nested:
        raise QueryError(f"column {nested[0]!r} holds lists, which CSV cannot; use --format json or parquet")
    if fmt == "table":
        text = render_table(frame, max_rows)
    elif fmt == "csv":
        text = frame.write_csv()
    elif fmt == "json":
        text = frame.write_json()
    if out is None:
        click.echo(text.rstrip("\n"))
        return
    try:
        if fmt == "parquet":
            _write_atomically(out, lambda p: frame.write_parquet(p))
        else:
            _write_atomically(out, lambda p: p.write_text(text if text.endswith("\n") else text + "\n"))
    except pl.exceptions.PolarsError as err:
        raise QueryError(f"cannot write {out}: {str(err).splitlines()[0]}") from None
    click.echo(f"wrote {frame.height} rows to {out}", err=True)


def register(main: click.Group) -> None:
    """Add ``query``, ``status``, ``export`` and ``compare`` to the ``ablate`` command group."""

    @main.command("query")
    @click.argument("sql")
    @_storage_option
    @click.option("--study", "studies", multiple=True, metavar="STUDY",
                  help="Only this study (repeatable; full name spec@profile, or a unique spec name).")
    @click.option("--format", "fmt", type=click.Choice(TABLE_FORMATS), default="table", show_default=True)
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Write to this file instead of stdout.")
    @click.option("--max-rows", type=click.IntRange(min=1), default=50, show_default=True,
                  help="Rows shown by --format table.")
    @_user_errors
    def query(sql, storage_url, studies, fmt, out, max_rows):
        """Run SQL over the study database's views and print or save the result.

        Views: studies, trials (one row per trial: factors, control_*, time_*, setting_*, error),
        runs (trial x dataset), scores (trial x dataset x query x metric: metric, value), scores_wide
        (one column per metric), rankings (top-100 docs per query: rank, doc_id, score).

        \b
        ablate query "select arm, dataset, avg(value) from scores where metric = 'ndcg_at_10' group by arm, dataset"
        """
        from ablate.query import open_database

        db = open_database(storage_url, list(studies) or None)
        _query_output(db.sql(sql), fmt, out, max_rows)

    @main.command("status")
    @click.argument("study", required=False)
    @_storage_option
    @_user_errors
    def status(study, storage_url):
        """Per study: cells complete / running / failed / waiting, the last error of each failed cell, an ETA."""
        from ablate.query import open_database
        from ablate.status import database_status

        db = open_database(storage_url)
        if not db.all_study_names:
            click.echo("no studies in this database yet (`ablate run STUDY` creates one)")
            return
        for entry in database_status(db, study):
            click.echo("\n".join(entry.lines()))

    @main.command("export")
    @click.argument("study")
    @_storage_option
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Directory to write (default: export/<study>).")
    @click.option("--trial", "trials", type=int, multiple=True, metavar="N",
                  help="Only this trial number (repeatable; default: every COMPLETE trial).")
    @click.option("--dataset", "datasets", multiple=True, metavar="NAME", help="Only this dataset (repeatable).")
    @click.option("--format", "formats", multiple=True, type=click.Choice(["trec", "parquet", "csv", "mteb"]),
                  help="What to write (repeatable; default: all of trec, parquet, csv, mteb).")
    @click.option("--no-header", is_flag=True,
                  help="Run files without the '#' provenance header (for trec_eval and ranx.Run.from_file).")
    @_user_errors
    def export(study, storage_url, out, trials, datasets, formats, no_header):
        """Write STUDY's TREC run files, per-query scores (Parquet, CSV) and mteb results JSON."""
        from ablate.export import FORMATS, export_study
        from ablate.query import open_database

        db = open_database(storage_url)
        name = db.resolve_study(study)
        out = out or Path("export") / name.replace("@", "_")
        written = export_study(db, name, out, trials=list(trials) or None, datasets=list(datasets) or None,
                               formats=tuple(formats) or FORMATS, header=not no_header)
        runs = sum(1 for p in written if p.suffix == ".trec")
        click.echo(f"{name}: wrote {len(written)} files to {out} ({runs} run files"
                   + (", each with a '#' provenance header: strip it or pass --no-header for trec_eval/ranx)"
                      if runs and not no_header else ")"))

    @main.command("compare")
    @click.argument("study")
    @click.argument("trial_a", type=int)
    @click.argument("trial_b", type=int)
    @_storage_option
    @click.option("--dataset", default=None, metavar="NAME", help="Only this dataset (default: every shared one).")
    @click.option("--metric", default=None, help="Metric (default: the study's).")
    @click.option("--top", type=click.IntRange(min=0), default=5, show_default=True,
                  help="How many of the largest per-query differences to show.")
    @click.option("--test", type=click.Choice(["t", "randomization", "wilcoxon", "sign", "bootstrap"]), default="t",
                  show_default=True, help="Paired test (ablate.stats.paired).")
    @_user_errors
    def compare(study, trial_a, trial_b, storage_url, dataset, metric, top, test):
        """Query-level comparison of trial B against trial A (numbers as in `ablate query "select * from trials"`)."""
        from ablate.compare import compare_trials, format_comparison
        from ablate.query import open_database

        db = open_database(storage_url)
        click.echo(format_comparison(compare_trials(db, study, trial_a, trial_b, dataset=dataset, metric=metric,
                                                    top=top, test=test)))
