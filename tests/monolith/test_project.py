"""Project-level behaviour: settings, schema, admin, static files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import yaml
from django.test import Client

from legacy_monolith.accounts.models import User
from legacy_monolith.core.jsonlog import JsonFormatter
from tests.support.processes import ROOT


def settings_under(env: dict[str, str]) -> dict[str, object]:
    """Import the settings in a fresh interpreter with ``env`` and report them."""
    code = (
        "import json, legacy_monolith.settings as s; "
        "print(json.dumps({'db': s.DATABASES['default'], 'debug': s.DEBUG, "
        "'hosts': s.ALLOWED_HOSTS, 'csrf': s.CSRF_TRUSTED_ORIGINS}, default=str))"
    )
    clean = {"PATH": "/usr/bin:/bin", **env}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_settings_defaults() -> None:
    settings = settings_under({})
    db = settings["db"]
    assert isinstance(db, dict)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert str(db["NAME"]).endswith("var/monolith.sqlite3")
    assert settings["debug"] is False
    assert settings["hosts"] == ["127.0.0.1", "localhost", "testserver", "[::1]"]
    assert settings["csrf"] == []


def test_settings_from_environment() -> None:
    settings = settings_under(
        {
            "DATABASE_URL": "postgresql://u:p@db.example:5433/shop",
            "MONOLITH_DB_CONN_MAX_AGE": "30",
            "MONOLITH_DEBUG": "true",
            "MONOLITH_ALLOWED_HOSTS": "shop.example, api.example",
            "MONOLITH_CSRF_TRUSTED_ORIGINS": "https://shop.example",
        }
    )
    db = settings["db"]
    assert isinstance(db, dict)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"]) == ("db.example", 5433, "shop")
    assert db["CONN_MAX_AGE"] == 30
    # Every test process gets its own, fresh PostgreSQL test database.
    assert str(db["TEST"]["NAME"]).startswith("test_strangler_")  # type: ignore[index]
    assert settings["debug"] is True
    assert settings["hosts"] == ["shop.example", "api.example"]
    assert settings["csrf"] == ["https://shop.example"]


def test_openapi_schema_lists_the_api(client: Client) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = set(schema["paths"])
    assert {
        "/api/products/",
        "/api/products/{id}/",
        "/api/products/{product_id}/availability/",
        "/api/categories/{slug}/",
        "/api/stock/reserve/",
        "/api/auth/token/",
        "/api/me/",
        "/api/accounts/register/",
    } <= paths


@pytest.mark.django_db
def test_admin_lists_the_models(client: Client) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    for url in [
        "/admin/",
        "/admin/catalog/product/",
        "/admin/catalog/category/",
        "/admin/inventory/stocklevel/",
        "/admin/inventory/warehouse/",
        "/admin/accounts/user/",
    ]:
        assert client.get(url).status_code == 200, url


def test_admin_requires_sign_in(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db  # closing the response signals request_finished
def test_static_files_are_served_without_debug(client: Client) -> None:
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    response.close()


def test_json_log_lines() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "shop.orders", logging.WARNING, __file__, 1, "paid %s", ("A-1",), None
    )
    record.order = "A-1"
    line = json.loads(formatter.format(record))
    assert line["level"] == "warning"
    assert line["logger"] == "shop.orders"
    assert line["message"] == "paid A-1"
    assert line["order"] == "A-1"
    assert line["ts"].endswith("Z")
    assert "args" not in line and "msg" not in line


def test_json_log_lines_carry_tracebacks() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "shop", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exc_info"]
