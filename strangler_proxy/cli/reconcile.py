"""``strangler reconcile SERVICE``: drift between the monolith and a service."""

from __future__ import annotations

import json
import time

import click

from strangler_proxy.exceptions import CliError, PlanError
from strangler_proxy.sync import reconcile as reconciling
from strangler_proxy.sync.adapter import load_adapter
from strangler_proxy.sync.config import load_sync
from strangler_proxy.sync.status import status_path, update_entry

__all__ = ["reconcile"]

# Exit codes, for CI: 0 no drift, 1 drift, 2 the comparison could not run.
DRIFT = 1
FAILED = 2


@click.command("reconcile")
@click.argument("service")
@click.option(
    "--sync",
    "sync_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Sync file naming the service and the events it receives.",
)
@click.option(
    "--database-url",
    help="The service's database [default: $SERVICE_DATABASE_URL, "
    "else var/SERVICE.sqlite3].",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    help="Compare only N rows per entity, drawn at random.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--max-examples", type=click.IntRange(min=0), default=5, show_default=True
)
def reconcile(
    service: str,
    sync_file: str,
    database_url: str | None,
    sample: int | None,
    output: str,
    max_examples: int,
) -> None:
    """Compare the monolith's rows with SERVICE's and report drift.

    Missing rows (in the monolith only), extra rows (in the service only) and
    differing fields, per entity. Exit status: 0 no drift, 1 drift, 2 error.
    """
    try:
        config = load_sync(sync_file)
        subscriber = config.subscriber(service)
        adapter = load_adapter(config.adapter)
    except PlanError as exc:
        raise CliError("\n".join(exc.issues), FAILED) from exc
    except (KeyError, LookupError) as exc:
        raise CliError(str(exc.args[0]), FAILED) from exc
    try:
        report = reconciling.reconcile(
            adapter,
            service,
            subscriber,
            database_url=database_url,
            sample=sample,
            max_examples=max_examples,
        )
    except (LookupError, OSError) as exc:
        raise CliError(str(exc), FAILED) from exc
    except Exception as exc:
        # Database drivers raise their own hierarchies (SQLAlchemy, Django).
        raise CliError(f"{type(exc).__name__}: {exc}", FAILED) from exc
    _record(report, sampled=sample is not None)
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _print_table(report)
    if report.drift:
        # Through CliError, because click only returns an Exit's code when
        # main() runs it with standalone_mode=False.
        drifted = sum(1 for e in report.entities if e.drift)
        raise CliError(f"drift in {drifted} of {len(report.entities)} entities", DRIFT)


def _record(report: reconciling.ReconcileReport, *, sampled: bool) -> None:
    """Keep the result in the sync status file (``$STRANGLER_SYNC_STATUS``),
    for the dashboard and the gate's ``reconcile_drift`` invariant."""
    path = status_path()
    if path is None:
        return
    entities = report.entities
    try:
        update_entry(
            path,
            "reconcile",
            report.service,
            {
                "at": time.time(),
                "drift": report.drift,
                "sampled": sampled,
                "missing": sum(e.missing for e in entities),
                "extra": sum(e.extra for e in entities),
                "differing": sum(e.differing for e in entities),
            },
        )
    except OSError as exc:
        click.echo(f"warning: could not record the result in {path}: {exc}", err=True)


def _print_table(report: reconciling.ReconcileReport) -> None:
    click.echo(
        f"{'entity':<22} {'compared':>8} {'missing':>8} {'extra':>8} {'differ':>8}"
    )
    for e in report.entities:
        click.echo(
            f"{e.aggregate_type:<22} {e.compared:>8} {e.missing:>8} "
            f"{e.extra:>8} {e.differing:>8}"
        )
    for e in report.entities:
        if e.missing_examples:
            ids = ", ".join(e.missing_examples)
            click.echo(f"{e.aggregate_type}: missing in {report.service}: {ids}")
        if e.extra_examples:
            ids = ", ".join(e.extra_examples)
            click.echo(f"{e.aggregate_type}: only in {report.service}: {ids}")
        for d in e.differing_examples:
            click.echo(
                f"{e.aggregate_type} {d.id}: {d.field}: "
                f"monolith {d.monolith!r} != {report.service} {d.service!r}"
            )
    if not report.drift:
        click.echo("no drift")
