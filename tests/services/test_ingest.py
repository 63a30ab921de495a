"""``POST /internal/events``: each event applied once, in order per aggregate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.services.conftest import Ingest
from tests.services.factories import category_payload, event, product_payload
from tests.support.internal import HEADERS as INTERNAL

Read = Callable[[TestClient, int], dict[str, object]]


@pytest.fixture
def product(staff: dict[str, str]) -> Read:
    """A product as staff see it (inactive ones too), with the status code."""

    def read(client: TestClient, id: int) -> dict[str, object]:
        response = client.get(f"/api/products/{id}/", headers=staff)
        return {"status": response.status_code, **response.json()}

    return read


def test_upsert_then_update_converges(
    seeded: TestClient, ingest: Ingest, product: Read
) -> None:
    update = event(
        "catalog.product", 1, 2, product_payload(1, 2, price="7.10", name="New")
    )
    assert ingest(update) == ["applied"]
    body = product(seeded, 1)
    assert (body["name"], body["price"], body["category"]) == ("New", "7.10", "books")


def test_duplicate_delivery_changes_nothing(
    seeded: TestClient, ingest: Ingest, product: Read
) -> None:
    first = event("catalog.product", 1, 2, product_payload(1, 1, name="Once"))
    assert ingest(first) == ["applied"]
    # The same event again, in a batch and on its own (a relay retry).
    assert ingest(first, first) == ["duplicate", "duplicate"]
    assert product(seeded, 1)["name"] == "Once"


def test_replay_of_a_whole_stream_is_idempotent(
    catalog: TestClient, ingest: Ingest
) -> None:
    stream = [
        event("catalog.category", 1, 1, category_payload(1, "kitchen")),
        event("catalog.product", 9, 1, product_payload(9, 1, name="A")),
        event("catalog.product", 9, 2, product_payload(9, 1, name="B")),
    ]
    assert ingest(*stream) == ["applied"] * 3
    before = catalog.get("/api/products/").content
    assert ingest(*stream) == ["duplicate"] * 3
    assert catalog.get("/api/products/").content == before


def test_stale_event_is_ignored(
    seeded: TestClient, ingest: Ingest, product: Read
) -> None:
    assert ingest(
        event("catalog.product", 1, 2, product_payload(1, 1, name="Two"))
    ) == ["applied"]
    # A different event with an old sequence (e.g. re-emitted) loses.
    old = event("catalog.product", 1, 1, product_payload(1, 1, name="One"))
    assert ingest(old) == ["stale"]
    assert product(seeded, 1)["name"] == "Two"


def test_gap_is_reported_and_applied_after_the_missing_event(
    seeded: TestClient, ingest: Ingest, product: Read
) -> None:
    second = event("catalog.product", 1, 2, product_payload(1, 1, name="Two"))
    third = event("catalog.product", 1, 3, product_payload(1, 1, name="Three"))
    response = seeded.post(
        "/internal/events", json={"events": [third]}, headers=INTERNAL
    )
    result = response.json()["results"][0]
    assert result == {
        "event_id": third["event_id"],
        "status": "out_of_order",
        "detail": "expected sequence 2",
    }
    assert product(seeded, 1)["name"] == "Product 1"
    # The relay retries: once the gap is filled the later event applies.
    assert ingest(second, third) == ["applied", "applied"]
    assert product(seeded, 1)["name"] == "Three"


def test_first_event_of_an_aggregate_may_start_mid_stream(
    seeded: TestClient, ingest: Ingest, product: Read
) -> None:
    # A backfill snapshot of a long-lived row carries its current sequence.
    assert ingest(event("catalog.product", 42, 17, product_payload(42, 1))) == [
        "applied"
    ]
    assert product(seeded, 42)["status"] == 200


def test_delete_events(seeded: TestClient, ingest: Ingest, product: Read) -> None:
    gone = event("catalog.product", 3, 2, product_payload(3, 2), kind="deleted")
    assert ingest(gone) == ["applied"]
    assert product(seeded, 3)["status"] == 404
    # Deleting an unknown row is a no-op, not an error.
    ghost = event("catalog.product", 77, 1, product_payload(77, 2), kind="deleted")
    assert ingest(ghost) == ["applied"]


def test_unknown_type_is_ignored_but_advances_the_sequence(
    seeded: TestClient, ingest: Ingest
) -> None:
    odd = event("catalog.product", 1, 2, {}, kind="repriced")
    assert ingest(odd) == ["ignored"]
    follow = event("catalog.product", 1, 3, product_payload(1, 1, name="After"))
    assert ingest(follow) == ["applied"]


def test_failing_event_is_rolled_back_and_retryable(
    catalog: TestClient, ingest: Ingest
) -> None:
    orphan = event("catalog.product", 5, 1, product_payload(5, 99))
    response = catalog.post(
        "/internal/events", json={"events": [orphan]}, headers=INTERNAL
    )
    result = response.json()["results"][0]
    # Its category has not arrived: a retryable wait, not an error.
    assert result["status"] == "dependency_missing"
    assert "FOREIGN KEY" in result["detail"].upper()
    # Nothing was recorded: after the category arrives, the retry applies.
    assert ingest(
        event("catalog.category", 99, 1, category_payload(99, "late")), orphan
    ) == ["applied", "applied"]


def test_malformed_batches_are_400(catalog: TestClient) -> None:
    not_a_batch = catalog.post("/internal/events", json=[1], headers=INTERNAL)
    assert not_a_batch.status_code == 400
    assert not_a_batch.json() == {"events": ["Expected a list of events."]}
    bad = event("catalog.product", 1, 0, {})
    bad["event_id"] = "nope"
    response = catalog.post(
        "/internal/events", json={"events": [bad]}, headers=INTERNAL
    )
    assert response.status_code == 400
    errors = response.json()["events"]["0"]
    assert set(errors) == {"event_id", "sequence"}
