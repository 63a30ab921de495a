"""Database per service on PostgreSQL: one database and one role per service.

:func:`provision` creates a login role and a database owned by it, and takes
away what PostgreSQL gives every role by default (``CONNECT`` on the database,
``CREATE`` and ``USAGE`` on its ``public`` schema), so no other service's role
can connect to it, nor read its tables if someone grants ``CONNECT`` later.
The service's migrations then run under its own role, which owns every table
it creates. ``strangler db provision SERVICE --admin-url URL`` prints the URL
to put in ``<SERVICE>_DATABASE_URL``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["Provisioned", "deprovision", "provision"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What :func:`provision` created; ``url`` logs in as the service's role."""

    role: str
    database: str
    url: str


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(_libpq(url), autocommit=True)


def _libpq(url: str) -> str:
    # SQLAlchemy-style URLs name the driver; libpq does not want it.
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"{name!r}: use lower-case letters, digits and '_' (at most 63)"
        )
    return name


def provision(
    admin_url: str,
    service: str,
    *,
    database: str | None = None,
    role: str | None = None,
    password: str | None = None,
) -> Provisioned:
    """Create ``service``'s role and database through ``admin_url`` (a role
    allowed to create roles and databases); fails if either exists."""
    database = _checked(database or service)
    role = _checked(role or service)
    password = password or secrets.token_urlsafe(18)
    db, rl = sql.Identifier(database), sql.Identifier(role)
    with _connect(admin_url) as conn:
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE"
            ).format(rl, sql.Literal(password))
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, rl))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
    params = conninfo_to_dict(_libpq(admin_url))
    params["dbname"] = database
    with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(rl))
    host = params.get("host", "127.0.0.1")
    port = params.get("port", "5432")
    return Provisioned(
        role,
        database,
        f"postgresql+psycopg://{role}:{password}@{host}:{port}/{database}",
    )


def deprovision(admin_url: str, database: str, role: str) -> None:
    """Drop a database (closing its sessions) and its role, if they exist."""
    with _connect(admin_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(_checked(database))
            )
        )
        conn.execute(
            sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(_checked(role)))
        )
