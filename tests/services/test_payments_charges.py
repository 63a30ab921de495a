"""The internal charges API: idempotent charges and refunds, the sandbox's faults.

In process (``TestClient``, or ``httpx.ASGITransport`` where requests must
overlap); every count is read from the service's tables, not from its API.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from extracted.chassis import Database
from extracted.chassis.validation import validate
from extracted.payments.idempotency import Claim, fingerprint
from extracted.payments.models import IdempotencyRecord, LedgerCharge, OrderClaim
from extracted.payments.schemas import charge_fields
from extracted.payments.services import Payments, charge_identity
from extracted.payments.settings import PaymentsConfig
from tests.services.conftest import TestClient
from tests.services.payments_support import (
    DECLINED,
    INSUFFICIENT,
    charge_body,
    counts,
    keyed,
    outbox,
    payments_client,
)
from tests.support.internal import HEADERS as INTERNAL
from tests.support.polling import eventually

CHARGES = "/internal/payments/charges"
SANDBOX = "/internal/payments/sandbox"
DRY = {"X-Strangler-Dry-Run": "1"}
NOTHING = (0, 0, 0, 0, 0)


@pytest.fixture
def client(service_db: str) -> Iterator[TestClient]:
    """A payments app on SQLite, and on PostgreSQL when one is configured."""
    with payments_client(service_db) as client:
        yield client


def database(client: TestClient) -> Database:
    db: Database = client.app.state.database  # type: ignore[attr-defined]
    return db


def charge(client: TestClient, key: str, **body: Any) -> httpx.Response:
    return client.post(CHARGES, json=charge_body(**body), headers=keyed(key))


def sandbox(client: TestClient, mode: str, **options: Any) -> None:
    response = client.post(SANDBOX, json={"mode": mode, **options}, headers=INTERNAL)
    assert response.status_code == 200, response.text


def refund(client: TestClient, payment_id: int, key: str) -> httpx.Response:
    return client.post(f"{CHARGES}/{payment_id}/refund", headers=keyed(key))


def test_charge_captures_records_and_emits(client: TestClient) -> None:
    response = charge(client, "k-1", order="ORD-1", amount="12.5")
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == [
        "id",
        "order",
        "status",
        "amount",
        "currency",
        "card_last4",
        "decline_code",
        "provider_ref",
        "refund_ref",
        "created_at",
        "updated_at",
    ]
    assert body["order"] == "ORD-1"
    assert body["status"] == "captured"
    assert body["amount"] == "12.50"
    assert body["currency"] == "EUR"
    assert body["card_last4"] == "4242"
    assert body["decline_code"] == body["refund_ref"] == ""
    assert body["provider_ref"].startswith("sim_ch_")
    assert body["created_at"].endswith("Z")
    # payment, ledger charge, no refund, the key, one event
    assert counts(database(client)) == (1, 1, 0, 1, 1)
    assert outbox(database(client)) == [("payment.captured", str(body["id"]), body)]


def test_same_key_and_body_replays_the_answer_and_never_charges_again(
    client: TestClient,
) -> None:
    first = charge(client, "k-1")
    assert first.status_code == 201, first.text
    # "12.5" is the same amount as "12.50": the same request.
    again = [charge(client, "k-1"), charge(client, "k-1", amount="12.5")]
    assert [r.status_code for r in again] == [201, 201]
    assert {r.content for r in again} == {first.content}
    assert counts(database(client)) == (1, 1, 0, 1, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "12.51"},
        {"order": "ORD-2"},
        {"card": "5555 5555 5555 4444"},
    ],
)
def test_same_key_with_a_different_body_is_422(
    client: TestClient, change: dict[str, str]
) -> None:
    assert charge(client, "k-1").status_code == 201
    reused = charge(client, "k-1", **change)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert counts(database(client)) == (1, 1, 0, 1, 1)


def test_a_charge_key_cannot_be_reused_for_a_refund(client: TestClient) -> None:
    payment = charge(client, "k-1").json()
    reused = refund(client, payment["id"], "k-1")
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "idempotency_key_required"),
        ({"Idempotency-Key": "  "}, "idempotency_key_required"),
        ({"Idempotency-Key": "k" * 256}, "idempotency_key_invalid"),
    ],
)
def test_the_key_is_required_and_bounded(
    client: TestClient, headers: dict[str, str], code: str
) -> None:
    response = client.post(CHARGES, json=charge_body(), headers={**INTERNAL, **headers})
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert counts(database(client)) == NOTHING
    assert charge(client, "k" * 255).status_code == 201


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            charge_body(card="4242424242424241"),
            {"card_number": ["Enter a valid card number."]},
        ),
        (
            charge_body(card="4242"),
            {"card_number": ["Enter a card number of 12 to 19 digits."]},
        ),
        (
            {"card_number": "4242 4242 4242 4242"},
            {
                "order": ["This field is required."],
                "amount": ["This field is required."],
                "currency": ["This field is required."],
            },
        ),
        (
            charge_body(amount="0", currency="eur"),
            {
                "amount": ["Ensure this value is greater than or equal to 0.01."],
                "currency": ["Must be a 3-letter ISO 4217 code, e.g. 'EUR'."],
            },
        ),
    ],
)
def test_invalid_requests_are_400_and_keep_the_key_free(
    client: TestClient, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    response = client.post(CHARGES, json=body, headers=keyed("k-1"))
    assert response.status_code == 400
    assert response.json() == errors
    assert counts(database(client)) == NOTHING
    # Nothing was stored under the key: the corrected request goes through.
    assert charge(client, "k-1").status_code == 201


@pytest.mark.parametrize(
    ("card", "code", "detail"),
    [
        (DECLINED, "card_declined", "Payment declined."),
        (INSUFFICIENT, "insufficient_funds", "Payment declined: insufficient funds."),
    ],
)
def test_a_declined_card_is_402_and_recorded_as_declined(
    client: TestClient, card: str, code: str, detail: str
) -> None:
    response = charge(client, "k-1", order="ORD-9", card=card)
    assert response.status_code == 402
    assert response.json() == {"detail": detail, "code": code, "order": "ORD-9"}
    recorded = client.get(CHARGES, params={"order": "ORD-9"}, headers=INTERNAL)
    [payment] = recorded.json()["results"]
    assert payment["status"] == "declined"
    assert payment["decline_code"] == code
    assert payment["card_last4"] == card[-4:]
    assert outbox(database(client)) == [
        ("payment.declined", str(payment["id"]), payment)
    ]
    again = charge(client, "k-1", order="ORD-9", card=card)
    assert (again.status_code, again.content) == (402, response.content)
    assert counts(database(client)) == (1, 1, 0, 1, 1)


def test_sandbox_decline_mode_declines_good_cards_for_n_calls(
    client: TestClient,
) -> None:
    sandbox(client, "decline", times=1)
    assert charge(client, "k-1", order="ORD-1").status_code == 402
    assert charge(client, "k-2", order="ORD-2").status_code == 201
    shown = client.get(SANDBOX, headers=INTERNAL).json()
    assert shown == {
        "mode": "ok",
        "times": None,
        "delay": 0.0,
        "charges": 2,
        "refunds": 0,
    }


def test_a_provider_timeout_is_504_and_the_retry_charges_once(
    client: TestClient,
) -> None:
    sandbox(client, "timeout", times=1)
    # A hang far longer than the service's timeout (2 s): the test would
    # take that long if the service waited for the provider.
    client.app.state.provider.hang = 60.0  # type: ignore[attr-defined]
    started = time.monotonic()
    response = charge(client, "k-1")
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["code"] == "provider_timeout"
    assert elapsed < 30
    assert counts(database(client)) == NOTHING
    retry = charge(client, "k-1")
    assert retry.status_code == 201, retry.text
    assert counts(database(client)) == (1, 1, 0, 1, 1)


def test_fail_after_charge_then_retry_charges_exactly_once(
    client: TestClient,
) -> None:
    sandbox(client, "fail_after_charge", times=1)
    response = charge(client, "k-1")
    assert response.status_code == 504
    assert response.json()["code"] == "provider_timeout"
    # The provider charged; the service did not learn it: no payment yet.
    assert counts(database(client)) == (0, 1, 0, 0, 0)
    retry = charge(client, "k-1")
    assert retry.status_code == 201, retry.text
    assert counts(database(client)) == (1, 1, 0, 1, 1)
    with database(client).sessions() as session:
        [entry] = session.query(LedgerCharge).all()
    assert retry.json()["provider_ref"] == entry.provider_ref
    assert entry.idempotency_key == "k-1"


def test_provider_down_is_503_and_charges_nothing(client: TestClient) -> None:
    sandbox(client, "down")
    for _ in range(2):
        response = charge(client, "k-1")
        assert response.status_code == 503
        assert response.json()["code"] == "provider_unavailable"
    assert counts(database(client)) == NOTHING
    sandbox(client, "ok")
    assert charge(client, "k-1").status_code == 201
    assert counts(database(client)) == (1, 1, 0, 1, 1)


def test_an_order_is_charged_once_whatever_the_key(client: TestClient) -> None:
    assert charge(client, "k-1", order="ORD-1").status_code == 201
    second = charge(client, "k-2", order="ORD-1")
    assert second.status_code == 409
    assert second.json()["code"] == "order_already_charged"
    assert counts(database(client)) == (1, 1, 0, 1, 1)
    # A declined attempt does not count: the order may be paid afterwards.
    assert charge(client, "k-3", order="ORD-2", card=DECLINED).status_code == 402
    assert charge(client, "k-4", order="ORD-2").status_code == 201


def test_another_key_cannot_charge_an_order_the_provider_charged(
    client: TestClient,
) -> None:
    sandbox(client, "fail_after_charge", times=1)
    assert charge(client, "k-1", order="ORD-1").status_code == 504
    # A careless caller tries a new key: the provider holds k-1's charge.
    other = charge(client, "k-2", order="ORD-1")
    assert other.status_code == 409
    assert other.json()["code"] == "order_already_charged"
    assert counts(database(client))[:2] == (0, 1)
    assert charge(client, "k-1", order="ORD-1").status_code == 201
    assert counts(database(client))[:2] == (1, 1)


def test_a_refunded_order_is_not_charged_again(client: TestClient) -> None:
    payment = charge(client, "k-1", order="ORD-1").json()
    assert refund(client, payment["id"], "r-1").status_code == 200
    again = charge(client, "k-2", order="ORD-1")
    assert again.status_code == 409
    assert again.json()["code"] == "order_already_charged"
    assert counts(database(client))[:3] == (1, 1, 1)


def test_refund_is_idempotent(client: TestClient) -> None:
    payment = charge(client, "k-1").json()
    first = refund(client, payment["id"], "r-1")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "refunded"
    assert body["refund_ref"].startswith("sim_re_")
    assert {k: v for k, v in body.items() if k not in ("status", "refund_ref")} == {
        k: v
        for k, v in payment.items()
        if k not in ("status", "refund_ref", "updated_at")
    } | {"updated_at": body["updated_at"]}
    again = refund(client, payment["id"], "r-1")
    assert (again.status_code, again.content) == (200, first.content)
    assert counts(database(client)) == (1, 1, 1, 2, 2)
    assert [t for t, _, _ in outbox(database(client))] == [
        "payment.captured",
        "payment.refunded",
    ]
    other = refund(client, payment["id"], "r-2")
    assert other.status_code == 409
    assert other.json() == {
        "detail": "Only a captured payment can be refunded.",
        "code": "invalid_state",
    }


def test_refunding_what_is_not_captured_is_409_and_unknown_is_404(
    client: TestClient,
) -> None:
    declined = charge(client, "k-1", card=DECLINED)
    [payment] = client.get(CHARGES, params={"order": "ORD-1"}, headers=INTERNAL).json()[
        "results"
    ]
    assert declined.status_code == 402
    response = refund(client, payment["id"], "r-1")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    missing = refund(client, 999, "r-2")
    assert missing.status_code == 404
    assert client.post(f"{CHARGES}/1/refund", headers=INTERNAL).status_code == 400
    assert counts(database(client)) == (1, 1, 0, 1, 1)


def test_a_refund_that_fails_after_the_provider_refunded_is_retried_once(
    client: TestClient,
) -> None:
    payment = charge(client, "k-1").json()
    sandbox(client, "fail_after_charge", times=1)
    failed = refund(client, payment["id"], "r-1")
    assert failed.status_code == 504
    assert counts(database(client))[2] == 1  # the provider did refund
    listed = client.get(CHARGES, params={"order": "ORD-1"}, headers=INTERNAL)
    assert listed.json()["results"][0]["status"] == "captured"
    retry = refund(client, payment["id"], "r-1")
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "refunded"
    assert counts(database(client)) == (1, 1, 1, 2, 2)


def test_charges_of_an_order_lists_every_attempt_newest_first(
    client: TestClient,
) -> None:
    declined = charge(client, "k-1", order="ORD-1", card=DECLINED)
    captured = charge(client, "k-2", order="ORD-1")
    charge(client, "k-3", order="ORD-2")
    assert declined.status_code == 402
    listed = client.get(CHARGES, params={"order": "ORD-1"}, headers=INTERNAL)
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert [p["status"] for p in results] == ["captured", "declined"]
    assert results[0] == captured.json()
    missing = client.get(CHARGES, headers=INTERNAL)
    assert missing.status_code == 400
    assert missing.json() == {"order": ["This field is required."]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", CHARGES, charge_body()),
        ("POST", f"{CHARGES}/1/refund", None),
        ("GET", f"{CHARGES}?order=ORD-1", None),
        ("GET", SANDBOX, None),
        ("POST", SANDBOX, {"mode": "down"}),
    ],
)
def test_internal_endpoints_refuse_calls_without_the_credential(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    paid = charge(client, "k-0", order="ORD-0").json()
    before = counts(database(client))
    for headers, status in [
        ({"Idempotency-Key": "k-1"}, 401),
        ({"Idempotency-Key": "k-1", "Authorization": "Bearer wrong"}, 403),
    ]:
        response = client.request(
            method, path.replace("/1/", f"/{paid['id']}/"), json=body, headers=headers
        )
        assert response.status_code == status, response.text
    assert counts(database(client)) == before
    assert client.get(SANDBOX, headers=INTERNAL).json()["mode"] == "ok"


def test_dry_run_charge_answers_as_if_charged_and_leaves_nothing(
    client: TestClient,
) -> None:
    sandbox(client, "down", times=1)  # the provider is not even asked
    dry = client.post(CHARGES, json=charge_body(), headers=keyed("k-1", **DRY))
    assert dry.status_code == 201, dry.text
    assert dry.headers["X-Strangler-Dry-Run"] == "1"
    assert dry.json()["status"] == "captured"
    declined = client.post(
        CHARGES, json=charge_body(card=DECLINED), headers=keyed("k-2", **DRY)
    )
    assert declined.status_code == 402
    assert declined.json()["code"] == "card_declined"
    assert counts(database(client)) == NOTHING
    assert client.get(SANDBOX, headers=INTERNAL).json()["times"] == 1
    sandbox(client, "ok")
    # The dry run claimed nothing: the real call with the same key charges.
    real = charge(client, "k-1")
    assert real.status_code == 201
    # Same answer but for the times, and the id on PostgreSQL, whose
    # sequences do not roll back.
    assert {k: v for k, v in real.json().items() if k[-3:] not in ("_at", "id")} == {
        k: v for k, v in dry.json().items() if k[-3:] not in ("_at", "id")
    }


def test_dry_run_refund_and_replay_leave_nothing(client: TestClient) -> None:
    payment = charge(client, "k-1").json()
    before = counts(database(client))
    path = f"{CHARGES}/{payment['id']}/refund"
    dry = client.post(path, headers=keyed("r-1", **DRY))
    assert dry.status_code == 200, dry.text
    assert dry.json()["status"] == "refunded"
    assert dry.json()["refund_ref"].startswith("sim_re_")
    replay = client.post(CHARGES, json=charge_body(), headers=keyed("k-1", **DRY))
    assert replay.json() == payment  # a dry run may read a stored answer
    assert counts(database(client)) == before
    listed = client.get(CHARGES, params={"order": "ORD-1"}, headers=INTERNAL)
    assert listed.json()["results"] == [payment]
    assert (
        refund(client, payment["id"], "r-1").json()["refund_ref"]
        == (dry.json()["refund_ref"])
    )


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"mode": "flaky"}, {"mode": ['"flaky" is not a valid choice.']}),
        ({}, {"mode": ["This field is required."]}),
        (
            {"mode": "down", "times": 0},
            {"times": ["Ensure this value is greater than or equal to 1."]},
        ),
    ],
)
def test_sandbox_settings_are_validated(
    client: TestClient, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    response = client.post(SANDBOX, json=body, headers=INTERNAL)
    assert response.status_code == 400
    assert response.json() == errors
    assert client.get(SANDBOX, headers=INTERNAL).json()["mode"] == "ok"


def test_a_key_whose_holder_died_is_taken_over_after_its_lease(
    client: TestClient,
) -> None:
    values = validate(charge_body(), charge_fields())
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with database(client).sessions() as session:
        session.add(
            IdempotencyRecord(
                key="k-1",
                operation="charge",
                fingerprint=fingerprint("charge", charge_identity(values)),
                state="in_progress",
                claim_token="dead",
                claimed_at=long_ago,
                created_at=long_ago,
            )
        )
        session.commit()
    response = charge(client, "k-1")
    assert response.status_code == 201, response.text
    assert counts(database(client)) == (1, 1, 0, 1, 1)


# Overlapping requests: in process over ASGI, on the test's event loop.


async def _concurrently(
    client: TestClient, requests: int, keys: list[str] | None = None
) -> list[httpx.Response]:
    """``requests`` charges of one order at once, with ``keys`` (default one)."""
    transport = httpx.ASGITransport(app=client.app)
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:

        async def one(key: str) -> None:
            responses.append(
                await http.post(CHARGES, json=charge_body(), headers=keyed(key))
            )

        async with anyio.create_task_group() as group:
            for n in range(requests):
                group.start_soon(one, keys[n] if keys else "k-1")
    return responses


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_concurrent_requests_with_one_key_charge_once(
    client: TestClient,
) -> None:
    # Every provider call takes 0.2 s, so the requests overlap for sure.
    sandbox(client, "ok", delay=0.2)
    responses = await _concurrently(client, 5)
    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.content for r in responses}) == 1
    assert counts(database(client)) == (1, 1, 0, 1, 1)


@pytest.mark.anyio
async def test_a_request_that_cannot_wait_for_the_holder_is_409(
    tmp_path: Path,
) -> None:
    config = PaymentsConfig(provider_timeout=2, in_progress_wait=0, claim_lease=30)
    url = f"sqlite:///{tmp_path / 'payments.sqlite3'}"
    with payments_client(url, config) as client:
        sandbox(client, "ok", delay=0.5)
        responses = await _concurrently(client, 2)
        assert sorted(r.status_code for r in responses) == [201, 409]
        busy = next(r for r in responses if r.status_code == 409)
        assert busy.json()["code"] == "idempotency_in_progress"
        won = next(r for r in responses if r.status_code == 201)
        retry = charge(client, "k-1")
        assert (retry.status_code, retry.content) == (201, won.content)
        assert counts(database(client)) == (1, 1, 0, 1, 1)


@pytest.mark.anyio
async def test_a_hanging_provider_does_not_block_other_requests(
    client: TestClient,
) -> None:
    sandbox(client, "timeout", times=1)
    transport = httpx.ASGITransport(app=client.app)
    order: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as http:

        async def hanging() -> None:
            response = await http.post(
                CHARGES, json=charge_body(), headers=keyed("k-1")
            )
            assert response.status_code == 504
            order.append("charge")

        async def health() -> None:
            # Once the charge holds its key, it is waiting on the provider.
            await eventually(
                lambda: counts(database(client))[3] == 1, "the charge claimed its key"
            )
            response = await http.get("/health")
            assert response.status_code == 200
            order.append("health")

        async with anyio.create_task_group() as group:
            group.start_soon(hanging)
            group.start_soon(health)
    assert order == ["health", "charge"]


@pytest.mark.anyio
async def test_two_keys_charging_one_order_at_once_charge_it_once(
    client: TestClient,
) -> None:
    sandbox(client, "ok", delay=0.2)
    responses = await _concurrently(client, 2, keys=["k-1", "k-2"])
    assert sorted(r.status_code for r in responses) == [201, 409]
    busy = next(r for r in responses if r.status_code == 409)
    assert busy.json()["code"] == "order_charge_in_progress"
    assert counts(database(client))[:2] == (1, 1)


@pytest.mark.parametrize(
    ("other_state", "minutes_ago", "replaced"),
    [
        (None, 0, True),  # released: the other key's retry is not running
        ("done", 0, True),  # answered (declined): its attempt is over
        ("in_progress", 0, False),  # came back meanwhile: keep its claim
        ("in_progress", 5, True),  # its holder died (past the lease)
    ],
)
def test_an_order_claim_is_replaced_only_when_its_key_is_not_running(
    client: TestClient, other_state: str | None, minutes_ago: int, replaced: bool
) -> None:
    payments: Payments = client.app.state.payments  # type: ignore[attr-defined]
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    with database(client).sessions() as session:
        session.add(OrderClaim(order="ORD-1", key="k-1", claimed_at=stamp))
        if other_state is not None:
            session.add(
                IdempotencyRecord(
                    key="k-1",
                    operation="charge",
                    fingerprint="f",
                    state=other_state,
                    claim_token="t-1",
                    claimed_at=stamp,
                    created_at=stamp,
                )
            )
        session.commit()
    mine = Claim("k-2", "t-2")
    assert payments._replace_order_claim("ORD-1", "k-1", mine) is replaced
    with database(client).sessions() as session:
        holder = session.get(OrderClaim, "ORD-1")
        assert holder is not None
        assert holder.key == ("k-2" if replaced else "k-1")
