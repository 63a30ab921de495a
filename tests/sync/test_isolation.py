"""Database per service on PostgreSQL: each service's role sees only its own.

Every database and role is created with a unique name and dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from extracted.catalog.app import MIGRATIONS as CATALOG_MIGRATIONS
from extracted.chassis.database import Database
from extracted.inventory.app import MIGRATIONS as INVENTORY_MIGRATIONS
from strangler_proxy.cli import main
from strangler_proxy.devstack.provision import Provisioned, deprovision, provision

pytestmark = pytest.mark.postgres


@pytest.fixture
def admin_url(require_postgres: str) -> str:
    return require_postgres


@pytest.fixture
def provisioned(admin_url: str) -> Iterator[dict[str, Provisioned]]:
    suffix = uuid.uuid4().hex[:10]
    made: dict[str, Provisioned] = {}
    try:
        for name in ("monolith", "catalog", "inventory"):
            made[name] = provision(admin_url, f"t_{name}_{suffix}")
        yield made
    finally:
        for item in made.values():
            deprovision(admin_url, item.database, item.role)


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def url_as(owner: Provisioned, database: Provisioned) -> str:
    """``owner``'s credentials pointed at ``database``'s database."""
    return owner.url.rsplit("/", 1)[0] + "/" + database.database


def test_migrations_run_under_the_services_own_role(
    provisioned: dict[str, Provisioned],
) -> None:
    for name, migrations in (
        ("catalog", CATALOG_MIGRATIONS),
        ("inventory", INVENTORY_MIGRATIONS),
    ):
        database = Database(provisioned[name].url)
        try:
            database.migrate(migrations)
        finally:
            database.dispose()
        with connect(provisioned[name].url) as conn:
            owners = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        assert owners == [(provisioned[name].role,)]


def test_a_service_cannot_connect_to_another_database(
    provisioned: dict[str, Provisioned],
) -> None:
    catalog = provisioned["catalog"]
    for other in ("monolith", "inventory"):
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            connect(url_as(catalog, provisioned[other])).close()
    with connect(catalog.url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (catalog.role,)


def test_tables_stay_private_even_with_connect_granted(
    provisioned: dict[str, Provisioned], admin_url: str
) -> None:
    monolith, catalog = provisioned["monolith"], provisioned["catalog"]
    with connect(monolith.url) as conn:
        conn.execute("CREATE TABLE catalog_product (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO catalog_product VALUES (1)")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            f'GRANT CONNECT ON DATABASE "{monolith.database}" TO "{catalog.role}"'
        )
    with connect(url_as(catalog, monolith)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM public.catalog_product")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.sneaky (id int)")


def test_provision_command_prints_the_services_url(
    admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"t_cli_{uuid.uuid4().hex[:10]}"
    try:
        assert main(["db", "provision", name, "--admin-url", admin_url]) == 0
        url = capsys.readouterr().out.strip()
        assert url.startswith(f"postgresql+psycopg://{name}:")
        with connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
        assert main(["db", "provision", name, "--admin-url", admin_url]) == 1
        assert "already exists" in capsys.readouterr().err
    finally:
        deprovision(admin_url, name, name)
