"""Request-target security: route on exactly what is forwarded."""

from __future__ import annotations

import pytest

from strangler_proxy.exceptions import PathError
from strangler_proxy.proxy.records import RequestRecord
from strangler_proxy.proxy.target import normalise_target
from tests.support.proxy import asgi_call, build_plan, open_app
from tests.support.upstreams import ThreadedServer


@pytest.mark.parametrize(
    ("raw", "forwarded", "routed"),
    [
        (b"/", b"/", "/"),
        (b"/a/b", b"/a/b", "/a/b"),
        (b"/a/b/", b"/a/b/", "/a/b/"),
        (b"/a/./b", b"/a/b", "/a/b"),
        (b"/a/../b", b"/b", "/b"),
        (b"/a/b/..", b"/a/", "/a/"),
        (b"/a/.", b"/a/", "/a/"),
        (b"/a/%2e%2E/b", b"/b", "/b"),
        (b"/a/%2e/b", b"/a/b", "/a/b"),
        (b"/%61pi/%7Eme", b"/api/~me", "/api/~me"),
        (b"/caf%c3%a9", b"/caf%C3%A9", "/caf\u00e9"),
        (b"/caf\xc3\xa9", b"/caf%C3%A9", "/caf\u00e9"),
        (b"/a%20b", b"/a%20b", "/a b"),
        (b"/a%3Fb", b"/a%3Fb", "/a?b"),
        # Runs of "/" are merged (nginx's merge_slashes): routed and forwarded
        # as one, so "//admin" cannot be routed apart from "/admin".
        (b"/a//b", b"/a/b", "/a/b"),
        (b"//a", b"/a", "/a"),
        (b"///", b"/", "/"),
        (b"/a//b//", b"/a/b/", "/a/b/"),
        (b"/a/.//b", b"/a/b", "/a/b"),
        (b"//%61//b/", b"/a/b/", "/a/b/"),
        (b"/a.b/c..d/.e", b"/a.b/c..d/.e", "/a.b/c..d/.e"),
    ],
)
def test_normalisation(raw: bytes, forwarded: bytes, routed: str) -> None:
    target = normalise_target("GET", raw, b"q=%2F%00 x")
    assert target.raw_path == forwarded
    assert target.path == routed
    assert target.query == b"q=%2F%00 x"  # the query string is never touched


@pytest.mark.parametrize(
    "raw",
    [
        b"/..",
        b"/a/../..",
        b"/a/%2e%2e/%2e%2e",
        b"/a%2Fb",
        b"/a%2fb",
        b"/a%5Cb",
        b"/a\\b",
        b"/a%00",
        b"/a\x00b",
        b"/a\x7fb",
        b"/a\tb",
        b"/a%zz",
        b"/a%2",
        b"/a%",
        b"http://evil.example/",
        b"evil.example:443",
        b"*",
        b"",
    ],
)
def test_refused_targets(raw: bytes) -> None:
    with pytest.raises(PathError):
        normalise_target("GET", raw, b"")


def test_asterisk_only_for_options() -> None:
    assert normalise_target("OPTIONS", b"*", b"").raw_path == b"*"


@pytest.mark.parametrize(
    ("raw", "forwarded", "routed"),
    [
        (b"/a%2Fb", b"/a%2Fb", "/a%2Fb"),
        (b"/a%2fb/%41", b"/a%2fb/A", "/a%2fb/A"),
        (b"/x/a%5Cb", b"/x/a%5Cb", "/x/a%5Cb"),
    ],
)
def test_permissive_passes_encoded_separators_untouched(
    raw: bytes, forwarded: bytes, routed: str
) -> None:
    target = normalise_target("GET", raw, b"", permissive=True)
    assert (target.raw_path, target.path) == (forwarded, routed)


def test_permissive_still_refuses_nul_and_escapes() -> None:
    for raw in (b"/a%00", b"/..", b"/a\\b"):
        with pytest.raises(PathError):
            normalise_target("GET", raw, b"", permissive=True)


def _plan(url: str, **proxy: object) -> object:
    return build_plan(
        {"legacy": url, "svc": url},
        routes=[
            {
                "name": "admin",
                "match": {"path": "/admin/**"},
                "mode": "cutover",
                "service": "svc",
            }
        ],
        proxy=dict(proxy),
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raw", "route", "forwarded"),
    [
        (b"/public/../admin/x", "admin", "/admin/x"),
        (b"/%61dmin/x", "admin", "/admin/x"),
        (b"/admin/../public", None, "/public"),
        (b"/admin/%2e%2e/public", None, "/public"),
    ],
)
async def test_routing_uses_the_forwarded_path(
    echo_upstream: ThreadedServer, raw: bytes, route: str | None, forwarded: str
) -> None:
    records: list[RequestRecord] = []
    async with open_app(_plan(echo_upstream.url), records) as app:  # type: ignore[arg-type]
        response = await asgi_call(app, "GET", raw, query=b"a=%2F")
    assert response.status == 200
    assert response.json()["raw_path"] == forwarded
    assert response.json()["query"] == "a=%2F"
    assert records[0].route == route
    assert records[0].path == forwarded


@pytest.mark.anyio
@pytest.mark.parametrize(
    "raw", [b"/public/..%2Fadmin", b"/..", b"/a%00", b"/a\\b", b"//evil/%zz"]
)
async def test_refused_targets_are_400_without_upstream(
    echo_upstream: ThreadedServer, raw: bytes
) -> None:
    records: list[RequestRecord] = []
    async with open_app(_plan(echo_upstream.url), records) as app:  # type: ignore[arg-type]
        response = await asgi_call(app, "GET", raw)
    assert response.status == 400
    assert response.json()["error"] == "bad_request"
    assert records[0].error == "bad_request"
    assert records[0].upstream == ""


@pytest.mark.anyio
async def test_permissive_forwards_encoded_slash(echo_upstream: ThreadedServer) -> None:
    plan = _plan(echo_upstream.url, path_security="permissive")
    async with open_app(plan) as app:  # type: ignore[arg-type]
        response = await asgi_call(app, "GET", b"/files/a%2Fb")
    assert response.status == 200
    assert response.json()["raw_path"] == "/files/a%2Fb"
