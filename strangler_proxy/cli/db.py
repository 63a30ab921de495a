"""``strangler db provision SERVICE``: a service's own PostgreSQL database and role."""

from __future__ import annotations

import click
import psycopg

from strangler_proxy.devstack import provision as provisioning
from strangler_proxy.exceptions import CliError

__all__ = ["db"]


@click.group("db")
def db() -> None:
    """Databases of the services: one database and one role each."""


@db.command("provision")
@click.argument("service")
@click.option(
    "--admin-url",
    required=True,
    help="A PostgreSQL role that may create roles and databases, e.g. "
    "postgresql://postgres@127.0.0.1:5432/postgres.",
)
@click.option("--database", help="Database name [default: SERVICE].")
@click.option("--role", help="Role name [default: SERVICE].")
def provision(
    service: str, admin_url: str, database: str | None, role: str | None
) -> None:
    """Create SERVICE's role and database; print the URL it connects with.

    Only that role can connect to the database or use its schema; put the URL
    in <SERVICE>_DATABASE_URL and the service migrates under its own role.
    """
    try:
        made = provisioning.provision(admin_url, service, database=database, role=role)
    except (ValueError, psycopg.Error) as exc:
        raise CliError(str(exc).strip()) from exc
    click.echo(made.url)
