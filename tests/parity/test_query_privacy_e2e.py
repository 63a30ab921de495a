"""Query-string secrets never reach the parity store's files.

A real proxy process shadows a request whose query carries a token and an API
key to a service that answers differently, so an example pair is stored. Both
upstreams echo the request URL in a header and in the body, the way a
``self`` link or a redirect would. The raw bytes of the SQLite database and its
write-ahead log must not hold the secrets anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from strangler_proxy.parity import open_store
from tests.proxy.test_shadow import shadow_plan
from tests.support.polling import wait_until
from tests.support.proxy import dump_plan, proxy_server
from tests.support.upstreams import read_body, serve, serve_lifespan

pytestmark = pytest.mark.e2e

SECRETS = (b"SECRET-TOKEN-1a2b", b"SECRET-KEY-3c4d", b"SECRET-ACCESS-5e6f")
QUERY = (
    "q=kettle&token=SECRET-TOKEN-1a2b&api_key=SECRET-KEY-3c4d"
    "&access%5Ftoken=SECRET-ACCESS-5e6f"
)


def echoing(price: str) -> Any:
    """An upstream that answers with ``price`` and the URL it was asked for."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await read_body(receive)
        url = f"{scope['path']}?{scope['query_string'].decode()}"
        body = orjson.dumps({"price": price, "self": url})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"content-location", url.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def store_files(store_path: Path) -> Iterator[Path]:
    """The database and every file SQLite keeps beside it (-wal, -shm)."""
    return (
        p for p in store_path.parent.iterdir() if p.name.startswith(store_path.name)
    )


def stored_examples(store_path: Path) -> list[dict[str, Any]]:
    if not store_path.exists():
        return []
    with open_store(store_path) as store:
        return [e.data for e in store.examples("products", "body.price")]


def test_query_secrets_are_not_in_the_database_or_its_wal(tmp_path: Path) -> None:
    store_path = tmp_path / "parity.sqlite3"
    with (
        serve(echoing("12.50")) as monolith,
        serve(echoing("marker-price-99")) as service,
    ):
        plan = dump_plan(shadow_plan(monolith.url, service.url), tmp_path / "p.yaml")
        server = proxy_server(plan)
        server.env["STRANGLER_PARITY_STORE"] = str(store_path)
        with server:
            answer = httpx.get(f"{server.ready_url}api/products/7?{QUERY}")
            assert answer.status_code == 200
            # The client still gets its own URL back: redaction is for storage.
            assert SECRETS[0] in answer.content
            wait_until(lambda: stored_examples(store_path), "an example pair is stored")
            wal = store_path.with_name(store_path.name + "-wal")
            assert wal.exists() and wal.stat().st_size > 0  # still in the WAL
            while_running = {p.name: p.read_bytes() for p in store_files(store_path)}
        after_shutdown = {p.name: p.read_bytes() for p in store_files(store_path)}

    for files in (while_running, after_shutdown):
        raw = b"".join(files.values())
        assert b"marker-price-99" in raw  # the example is there, readable
        for secret in SECRETS:
            assert secret not in raw, (secret, sorted(files))
    (example,) = stored_examples(store_path)
    assert example["request"]["target"] == (
        "/api/products/7?q=kettle&token=***&api_key=***&access_token=***"
    )
    service_side = example["service"]
    assert service_side["headers"]["content-location"] == (
        "/api/products/7?q=kettle&token=***&api_key=***&access%5Ftoken=***"
    )
    assert orjson.loads(service_side["body"])["self"] == (
        "/api/products/7?q=kettle&token=***&api_key=***&access%5Ftoken=***"
    )
