"""The read side: projection, rebuild command, restart, lag, Redis."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extracted.orders.domain import Order
from extracted.orders.projection import Projector
from extracted.orders.readmodel import RedisReadModel, SQLiteReadModel, public
from extracted.orders.saga import order_json
from extracted.orders.store import OrdersApplication
from tests.services.orders.test_aggregate import LINES
from tests.support.processes import PYTHON, ROOT


def _orders(store: OrdersApplication, count: int) -> list[str]:
    """``count`` orders in assorted states; their numbers."""
    numbers = []
    for i in range(count):
        number = f"ORD-{i:04d}-TEST"
        order = Order(
            number=number,
            customer=2 + i % 3,
            lines=LINES,
            total="25.00",
            currency="EUR",
            saga=str(i),
        )
        order.reserve_stock(f"{i}:reserve", [])
        if i % 4 == 3:
            order.fail("out_of_stock", "checkout failed: out_of_stock", None)
        elif i % 4 == 2:
            order.fail(
                "card_declined",
                "payment declined: card_declined",
                {"id": i, "status": "declined"},
            )
        else:
            order.capture_payment({"id": i, "status": "captured"})
            order.confirm()
        store.save(order)
        numbers.append(number)
    return numbers


def _redis_url() -> str:
    import redis

    db = 9
    client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{db}")
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        client.close()
    return f"redis://127.0.0.1:6379/{db}"


@pytest.fixture(params=["sqlite", "redis"])
def read_model(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SQLiteReadModel | RedisReadModel]:
    if request.param == "sqlite":
        model: Any = SQLiteReadModel(str(tmp_path / "read.sqlite3"))
    else:
        model = RedisReadModel(_redis_url(), prefix=f"test:{uuid.uuid4().hex}:")
    yield model
    if request.param == "redis":
        model.reset()
    model.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OrdersApplication]:
    app = OrdersApplication(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    yield app
    app.close()


def test_projection_matches_replay(store: OrdersApplication, read_model: Any) -> None:
    numbers = _orders(store, 8)
    projector = Projector(store, read_model)
    assert projector.lag()[0] == store.head() > 0
    assert projector.catch_up() == store.head()
    assert projector.lag() == (0, 0.0)
    for number in numbers:
        replayed = store.find(number)
        assert replayed is not None
        doc = read_model.get(number)
        if replayed.status == "failed" and replayed.payment is None:
            assert doc is None  # failed before payment: not listed, as the monolith
            continue
        assert doc is not None
        assert public(doc) == order_json(replayed)
    count, page = read_model.page(2, None, 0, 100)
    assert [d["number"] for d in page] == ["ORD-0006-TEST", "ORD-0000-TEST"]
    assert count == 2
    count, _ = read_model.page(None, "failed", 0, 100)
    assert count == 2


def test_restart_resumes_from_the_tracked_position(
    store: OrdersApplication, read_model: Any
) -> None:
    _orders(store, 3)
    Projector(store, read_model).catch_up()
    position = read_model.position()
    _orders_more = Order(
        number="ORD-NEWW-ONEE",
        customer=2,
        lines=LINES,
        total="25.00",
        currency="EUR",
        saga="x",
    )
    store.save(_orders_more)
    restarted = Projector(store, read_model)
    assert restarted.position == position
    assert restarted.catch_up() == 1  # only what is new
    assert read_model.position() == store.head()
    # Applying an old batch again changes nothing.
    old = [restarted.change(n) for n in store.read(0)]
    before = read_model.all_documents()
    assert read_model.apply(old) == store.head()
    assert read_model.all_documents() == before


def test_rebuild_command_reproduces_the_read_model(tmp_path: Path) -> None:
    events = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    read = tmp_path / "read.sqlite3"
    store = OrdersApplication(events)
    try:
        _orders(store, 6)
    finally:
        store.close()
    model = SQLiteReadModel(str(read))
    app = OrdersApplication(events)
    Projector(app, model).catch_up()
    expected = model.all_documents()
    model.reset()
    assert model.all_documents() == []
    env = {
        **os.environ,
        "ORDERS_DATABASE_URL": f"sqlite:///{tmp_path / 'orders.sqlite3'}",
        "ORDERS_EVENT_STORE_URL": events,
        "ORDERS_READ_MODEL_URL": f"sqlite:///{read}",
    }
    done = subprocess.run(
        [PYTHON, "-m", "extracted.orders", "rebuild-read-model"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "rebuilt the read model: 22 events" in done.stdout
    assert model.all_documents() == expected
    assert model.position() == 22
    model.close()
    app.close()


def test_wait_for_a_version_is_bounded(
    store: OrdersApplication, read_model: Any
) -> None:
    _orders(store, 1)
    projector = Projector(store, read_model, poll=0.05)
    assert not projector.wait_for(store.head(), timeout=0.1)  # nobody projects
    projector.start()
    try:
        assert projector.wait_for(store.head(), timeout=10)
    finally:
        projector.stop()
