"""Header handling in both directions (hand-made requests: nothing normalised)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from strangler_proxy.plan import ProxyConfig
from strangler_proxy.proxy.headers import HeaderPolicy, parse_request_headers
from strangler_proxy.transport import transport_name
from tests.support.proxy import RawResponse, asgi_call, build_plan, open_app
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.anyio

HOST = (b"host", b"shop.example:8443")


async def _send(
    upstream: ThreadedServer,
    headers: list[tuple[bytes, bytes]],
    *,
    path: bytes = b"/echo",
    query: bytes = b"",
    proxy: dict[str, object] | None = None,
    upstream_options: dict[str, object] | None = None,
    client: tuple[str, int] = ("203.0.113.7", 4321),
    scheme: str = "https",
) -> RawResponse:
    plan = build_plan(
        {"legacy": upstream.url},
        proxy=proxy,
        upstream_options={"legacy": upstream_options or {}},
    )
    async with open_app(plan) as app:
        return await asgi_call(
            app, "GET", path, query=query, headers=headers, client=client, scheme=scheme
        )


def _seen(response: RawResponse) -> list[tuple[str, str]]:
    assert response.status == 200, response.body
    return [(k, v) for k, v in response.json()["headers"]]


def _values(response: RawResponse, name: str) -> list[str]:
    return [v for k, v in _seen(response) if k == name]


@pytest.mark.parametrize(
    "name",
    [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    ],
)
async def test_hop_by_hop_request_headers_removed(
    echo_upstream: ThreadedServer, name: bytes
) -> None:
    response = await _send(echo_upstream, [HOST, (name, b"x"), (b"x-keep", b"1")])
    names = [k for k, _ in _seen(response)]
    assert name.decode() not in names
    assert "x-keep" in names


async def test_headers_named_in_connection_removed(
    echo_upstream: ThreadedServer,
) -> None:
    response = await _send(
        echo_upstream,
        [
            HOST,
            (b"connection", b"X-Secret, close"),
            (b"connection", b"x-other"),
            (b"x-secret", b"s"),
            (b"X-Other".lower(), b"o"),
            (b"x-keep", b"k"),
        ],
    )
    names = [k for k, _ in _seen(response)]
    assert "x-secret" not in names
    assert "x-other" not in names
    assert "x-keep" in names


async def test_hop_by_hop_response_headers_removed(
    echo_upstream: ThreadedServer,
) -> None:
    response = await _send(
        echo_upstream,
        [HOST],
        path=b"/headers",
        query=(
            b"h=Connection:x-private&h=X-Private:1&h=Keep-Alive:timeout=5"
            b"&h=Proxy-Authenticate:Basic&h=Upgrade:h2c&h=X-Public:2"
        ),
    )
    assert response.header("x-private") is None
    assert response.header("keep-alive") is None
    assert response.header("proxy-authenticate") is None
    assert response.header("upgrade") is None
    assert response.header("connection") is None
    assert response.header("x-public") == "2"


@pytest.mark.parametrize(
    ("hops", "expected"),
    [
        (0, "203.0.113.7"),
        (1, "10.0.0.2, 203.0.113.7"),
        (2, "198.51.100.1, 10.0.0.2, 203.0.113.7"),
        (3, "6.6.6.6, 198.51.100.1, 10.0.0.2, 203.0.113.7"),
        (9, "6.6.6.6, 198.51.100.1, 10.0.0.2, 203.0.113.7"),
    ],
)
async def test_x_forwarded_for_keeps_only_trusted_hops(
    echo_upstream: ThreadedServer, hops: int, expected: str
) -> None:
    response = await _send(
        echo_upstream,
        [
            HOST,
            (b"x-forwarded-for", b"6.6.6.6, 198.51.100.1"),
            (b"x-forwarded-for", b"10.0.0.2"),
        ],
        proxy={"trusted_hops": hops},
    )
    assert _values(response, "x-forwarded-for") == [expected]


@pytest.mark.parametrize(
    ("hops", "expected"),
    [
        (0, "203.0.113.7"),
        (1, "10.0.0.2"),
        (2, "198.51.100.1"),
        (3, "6.6.6.6"),
        # Fewer entries than trusted hops: nobody trusted vouches for the
        # leftmost one, so the peer it is (as Envoy's xff_num_trusted_hops).
        (9, "203.0.113.7"),
    ],
)
async def test_x_real_ip_is_the_client_address_never_the_clients_claim(
    echo_upstream: ThreadedServer, hops: int, expected: str
) -> None:
    response = await _send(
        echo_upstream,
        [
            HOST,
            (b"x-real-ip", b"127.0.0.1"),
            (b"x-forwarded-for", b"6.6.6.6, 198.51.100.1"),
            (b"x-forwarded-for", b"10.0.0.2"),
            (b"x-real-ip", b"127.0.0.2"),
        ],
        proxy={"trusted_hops": hops},
    )
    assert _values(response, "x-real-ip") == [expected]


@pytest.mark.parametrize(
    ("hops", "proto", "host"),
    [(0, "https", "shop.example:8443"), (1, "http", "front.example")],
)
async def test_x_forwarded_proto_and_host(
    echo_upstream: ThreadedServer, hops: int, proto: str, host: str
) -> None:
    response = await _send(
        echo_upstream,
        [
            HOST,
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-host", b"front.example"),
        ],
        proxy={"trusted_hops": hops},
    )
    assert _values(response, "x-forwarded-proto") == [proto]
    assert _values(response, "x-forwarded-host") == [host]


@pytest.mark.parametrize(
    ("hops", "client", "expected"),
    [
        (0, "203.0.113.7", 'for=203.0.113.7;proto=https;host="shop.example:8443"'),
        (
            1,
            "203.0.113.7",
            'for=10.0.0.2, for=203.0.113.7;proto=https;host="shop.example:8443"',
        ),
        (0, "2001:db8::1", 'for="[2001:db8::1]";proto=https;host="shop.example:8443"'),
    ],
)
async def test_forwarded_header(
    echo_upstream: ThreadedServer, hops: int, client: str, expected: str
) -> None:
    response = await _send(
        echo_upstream,
        [HOST, (b"forwarded", b'for=6.6.6.6;host="a,b", for=10.0.0.2')],
        proxy={"trusted_hops": hops},
        client=(client, 1),
    )
    assert _values(response, "forwarded") == [expected]


async def test_via_appended_both_ways(echo_upstream: ThreadedServer) -> None:
    response = await _send(
        echo_upstream,
        [HOST, (b"via", b"1.0 front")],
        path=b"/headers",
        query=b"h=Via:1.1%20backend",
        proxy={"via": "edge-7"},
    )
    assert _values(response, "via") == ["1.0 front, 1.1 edge-7"]
    assert response.header("via") == "1.1 backend, 1.1 edge-7"


@pytest.mark.parametrize(
    ("plan_mode", "upstream_mode", "expected"),
    [
        ("preserve", None, "shop.example:8443"),
        ("rewrite", None, "UPSTREAM"),
        ("preserve", "rewrite", "UPSTREAM"),
        ("rewrite", "preserve", "shop.example:8443"),
    ],
)
async def test_host_preserved_or_rewritten(
    echo_upstream: ThreadedServer,
    plan_mode: str,
    upstream_mode: str | None,
    expected: str,
) -> None:
    response = await _send(
        echo_upstream,
        [HOST],
        proxy={"host": plan_mode},
        upstream_options={"host": upstream_mode} if upstream_mode else None,
    )
    upstream_host = echo_upstream.url.removeprefix("http://")
    assert _values(response, "host") == [expected.replace("UPSTREAM", upstream_host)]


@pytest.mark.parametrize(("mode", "status"), [("drop", 200), ("reject", 400)])
async def test_underscore_headers(
    echo_upstream: ThreadedServer, mode: str, status: int
) -> None:
    response = await _send(
        echo_upstream,
        [HOST, (b"x-user_id", b"admin"), (b"x-user-id", b"alice")],
        proxy={"underscore_headers": mode},
    )
    assert response.status == status
    if status == 200:
        assert _values(response, "x-user_id") == []
        assert _values(response, "x-user-id") == ["alice"]
    else:
        assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize(
    ("enabled", "location", "expected"),
    [
        (False, "UPSTREAM/next?x=1", "UPSTREAM/next?x=1"),
        (True, "UPSTREAM/next?x=1", "https://shop.example:8443/next?x=1"),
        (True, "UPSTREAM", "https://shop.example:8443"),
        (True, "http://elsewhere.example/next", "http://elsewhere.example/next"),
        (True, "/relative", "/relative"),
    ],
)
async def test_location_rewriting(
    echo_upstream: ThreadedServer, enabled: bool, location: str, expected: str
) -> None:
    location = location.replace("UPSTREAM", echo_upstream.url)
    response = await _send(
        echo_upstream,
        [HOST],
        path=b"/headers",
        query=b"h=Location:" + location.encode(),
        proxy={"rewrite_location": enabled},
    )
    assert response.header("location") == expected.replace(
        "UPSTREAM", echo_upstream.url
    )


@pytest.mark.parametrize(
    ("enabled", "cookie", "expected"),
    [
        (False, "a=1; Domain=127.0.0.1; Path=/", "a=1; Domain=127.0.0.1; Path=/"),
        (True, "a=1; Domain=127.0.0.1; Path=/", "a=1; Domain=shop.example; Path=/"),
        (True, "a=1; domain=.127.0.0.1", "a=1; domain=shop.example"),
        (True, "a=1; Domain=other.example", "a=1; Domain=other.example"),
        (True, "a=1; Path=/x", "a=1; Path=/x"),
    ],
)
async def test_set_cookie_domain_rewriting(
    echo_upstream: ThreadedServer, enabled: bool, cookie: str, expected: str
) -> None:
    response = await _send(
        echo_upstream,
        [HOST],
        path=b"/headers",
        query=b"h=Set-Cookie:" + quote(cookie).encode(),
        proxy={"rewrite_cookies": enabled},
    )
    assert response.header("set-cookie") == expected


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
        [(b"content-length", b"5"), (b"content-length", b"6")],
        [(b"content-length", b"5, 6")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"0x10")],
        [(b"transfer-encoding", b"gzip")],
        [(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")],
        [(b"host", b"a"), (b"host", b"b")],
    ],
)
async def test_ambiguous_framing_is_refused(
    echo_upstream: ThreadedServer, headers: list[tuple[bytes, bytes]]
) -> None:
    if not any(name == b"host" for name, _ in headers):
        headers = [HOST, *headers]
    response = await _send(echo_upstream, headers)
    assert response.status == 400
    assert response.json()["error"] == "bad_request"
    assert response.header("connection") == "close"


async def test_repeated_equal_lengths_are_accepted() -> None:
    policy = HeaderPolicy.from_config(ProxyConfig())
    parsed = parse_request_headers(
        [(b"content-length", b"5, 5"), (b"content-length", b"5")], policy
    )
    assert parsed.content_length == 5


async def test_expect_and_framing_headers_are_not_forwarded(
    echo_upstream: ThreadedServer,
) -> None:
    response = await _send(echo_upstream, [HOST, (b"expect", b"100-continue")])
    names = [k for k, _ in _seen(response)]
    assert "expect" not in names
    assert "transfer-encoding" not in names


async def test_end_to_end_headers_pass_in_order(echo_upstream: ThreadedServer) -> None:
    response = await _send(
        echo_upstream,
        [
            HOST,
            (b"accept", b"a/b"),
            (b"cookie", b"a=1"),
            (b"x-multi", b"1"),
            (b"authorization", b"Bearer t"),
            (b"x-multi", b"2"),
        ],
    )
    seen = [(k, v) for k, v in _seen(response) if not k.startswith(("x-f", "forw"))]
    assert seen[:6] == [
        ("host", "shop.example:8443"),
        ("accept", "a/b"),
        ("cookie", "a=1"),
        ("x-multi", "1"),
        ("authorization", "Bearer t"),
        ("x-multi", "2"),
    ]
    assert "user-agent" not in dict(seen)
    assert "accept-encoding" not in dict(seen)


@pytest.mark.parametrize("value", ["caf\u00e9 \u2603".encode(), b"caf\xe9"])
async def test_non_ascii_header_values_pass(
    echo_upstream: ThreadedServer, value: bytes
) -> None:
    response = await _send(echo_upstream, [HOST, (b"x-name", value)])
    sent = _values(response, "x-name")
    if value == b"caf\xe9" and transport_name() == "aiohttp":
        # The aiohttp transport sends invalid UTF-8 as UTF-8 of its latin-1
        # reading (aiohttp encodes header values as UTF-8).
        assert sent == ["caf\u00e9".encode().decode("latin-1")]
    else:
        # Field values are opaque octets (RFC 9110 §5.5): the exact bytes.
        assert sent == [value.decode("latin-1")]


@pytest.mark.parametrize(
    ("hops", "expected"),
    [(0, "https://shop.example:8443/next"), (1, "http://front.example/next")],
)
async def test_location_rewriting_uses_trusted_forwarded_origin(
    echo_upstream: ThreadedServer, hops: int, expected: str
) -> None:
    response = await _send(
        echo_upstream,
        [
            HOST,
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-host", b"front.example"),
        ],
        path=b"/headers",
        query=b"h=Location:" + quote(f"{echo_upstream.url}/next").encode(),
        proxy={"rewrite_location": True, "trusted_hops": hops},
    )
    assert response.header("location") == expected


async def test_large_response_header_is_relayed(echo_upstream: ThreadedServer) -> None:
    big = "v" * 20_000
    response = await _send(
        echo_upstream,
        [HOST],
        path=b"/headers",
        query=f"h=X-Big:{big}".encode()
        + b"".join(b"&h=X-N%d:1" % i for i in range(200)),
        proxy={"limits": {"max_uri": 64 * 1024}},
    )
    assert response.status == 200
    assert response.header("x-big") == big
    assert response.header("x-n199") == "1"
