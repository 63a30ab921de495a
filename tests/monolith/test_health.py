from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test import Client


def test_health_is_ok_without_touching_the_database(client: Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_rejects_writes(client: Client) -> None:
    assert client.post("/health").status_code == 405


@pytest.mark.django_db
def test_ready_when_database_answers(client: Client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


@pytest.mark.django_db
def test_ready_is_503_when_database_fails(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_cursor(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("connection refused")

    # The database is the dependency here, not the unit under test.
    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "error"},
    }
