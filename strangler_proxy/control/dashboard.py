"""The parity dashboard: HTML pages on the admin port under ``/dashboard/``.

Protected by the admin token like the rest of the admin API. A browser cannot
send a bearer header when it loads a page, so ``/dashboard/?token=TOKEN``
is accepted once: the dashboard answers with a redirect to the same page
without the token in the address and sets a session cookie scoped to
``/dashboard`` (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS), which
later page loads send. A bearer header works too (scripts, curl).

The cookie is not the token. It is ``EXPIRES.NONCE.SIGNATURE``: an HMAC-SHA256
of the expiry time and a random nonce, keyed by a secret drawn when the process
starts mixed with the admin token. The token cannot be read back from it, nor
guessed offline from it; it expires (:data:`SESSION_TTL`), dies with the
process, and opens the dashboard only, never the admin API.

Pages: ``/dashboard/`` (every route: mode, legacy/service split, samples,
coverage, mismatch rates) and ``/dashboard/routes/NAME`` (the same plus the
mismatch rate per minute, the differing field paths and an example pair with
the differences highlighted, redacted as stored).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from strangler_proxy.reports import Report, build_report, route_report
from strangler_proxy.reports.html import LiveRoute, render_html

if TYPE_CHECKING:
    from strangler_proxy.observe.sides import SideStats
    from strangler_proxy.parity import ParityStore
    from strangler_proxy.proxy.runtime import RuntimeHolder
    from strangler_proxy.types import Receive, Scope, Send

__all__ = ["COOKIE", "PREFIX", "SESSION_TTL", "Dashboard"]

PREFIX = "/dashboard"
COOKIE = "strangler_dashboard"
SESSION_TTL = 8 * 3600
"""How long a dashboard session cookie is good for, in seconds."""
TIMELINE = timedelta(hours=1)

_HTML = b"text/html; charset=utf-8"


class Dashboard:
    """The ASGI app of the dashboard pages (mounted by the admin app)."""

    def __init__(
        self,
        *,
        holder: RuntimeHolder,
        token: str,
        sides: SideStats | None = None,
        session_ttl: float = SESSION_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.holder = holder
        self.sides = sides
        self._token = token.encode()
        self._session_ttl = session_ttl
        self._clock = clock
        self._session_key = hmac.new(
            secrets.token_bytes(32), self._token, hashlib.sha256
        ).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[0]
        if given is not None:
            if not self._matches(given.encode()):
                await _page(send, 401, _message("Unauthorized: wrong token."))
                return
            # Take the token out of the address (history, Referer, logs).
            cookie = (
                f"{COOKIE}={self.new_session()}; Path={PREFIX}; "
                f"Max-Age={int(self._session_ttl)}; HttpOnly; SameSite=Strict"
            )
            if scope.get("scheme") == "https":
                cookie += "; Secure"
            await _page(
                send,
                303,
                b"",
                [(b"location", path.encode()), (b"set-cookie", cookie.encode())],
            )
            return
        if not self._authorised(scope):
            await _page(
                send,
                401,
                _message("Unauthorized: open /dashboard/?token=ADMIN_TOKEN once."),
                [(b"www-authenticate", b'Bearer realm="strangler-admin"')],
            )
            return
        if scope["method"] not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET")]
            await _page(send, 405, _message("Method not allowed."), allow)
            return
        body: str | None = None
        if path in (PREFIX, PREFIX + "/"):
            body = await asyncio.to_thread(self._index)
        elif path.startswith(PREFIX + "/routes/"):
            name = unquote(path.removeprefix(PREFIX + "/routes/"))
            body = await asyncio.to_thread(self._route, name)
        if body is None:
            await _page(send, 404, _message("Not found."))
            return
        await _page(send, 200, body.encode())

    def _matches(self, given: bytes) -> bool:
        # compare_digest: the time taken must not tell how much of it matched.
        return hmac.compare_digest(given, self._token)

    def new_session(self) -> str:
        """A fresh session cookie value: ``EXPIRES.NONCE.SIGNATURE``."""
        expires = int(self._clock() + self._session_ttl)
        payload = f"{expires}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._sign(payload)}"

    def valid_session(self, value: bytes) -> bool:
        """Whether ``value`` is a session this dashboard issued, not expired."""
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return False
        expires, dot, rest = text.partition(".")
        nonce, dot2, signature = rest.partition(".")
        if not (dot and dot2 and expires.isdigit()):
            return False
        expected = self._sign(f"{expires}.{nonce}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return False
        return int(expires) > self._clock()

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._session_key, payload.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer" and self._matches(credentials.strip()):
                    return True
            elif name == b"cookie":
                for part in bytes(value).split(b";"):
                    key, _, session = part.strip().partition(b"=")
                    if key == COOKIE.encode() and self.valid_session(session):
                        return True
        return False

    def _store(self) -> ParityStore | None:
        shadow = self.holder.current.shadow
        return shadow.store if shadow is not None else None

    def _live(self, store: ParityStore | None) -> dict[str, LiveRoute]:
        live = {}
        for route in self.holder.current.plan.routes:
            legacy = service = None
            if self.sides is not None:
                legacy, service = self.sides.requests(route.name)
            timeline: list[tuple[float, int, int]] = []
            if store is not None:
                timeline = [
                    (float(at), compared, mismatched)
                    for at, compared, mismatched in store.timeline(route.name, TIMELINE)
                ]
            live[route.name] = LiveRoute(route.mode, legacy, service, timeline)
        return live

    def _index(self) -> str:
        store = self._store()
        report = build_report(store) if store is not None else _empty()
        return render_html(
            report,
            title="strangler: parity dashboard",
            live=self._live(store),
            link=PREFIX + "/routes/",
        )

    def _route(self, name: str) -> str | None:
        store = self._store()
        live = self._live(store)
        if name not in live:
            return None
        report = _empty()
        if store is not None:
            report = Report(time.time(), None, (route_report(store, name),))
        return render_html(
            report, title=f"strangler: {name}", live={name: live[name]}, link=None
        )


def _empty() -> Report:
    return Report(time.time(), None, ())


def _message(text: str) -> bytes:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>strangler</title>"
        f"<p>{text}</p></html>"
    ).encode()


async def _page(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", _HTML),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        # The page has no scripts and loads nothing from elsewhere.
        (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
        (b"x-frame-options", b"DENY"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
