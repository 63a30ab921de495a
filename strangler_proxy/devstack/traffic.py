"""Realistic shop traffic for the bundled monolith, through the proxy.

Two halves, so that determinism can be tested without HTTP:

* :func:`plan_requests` turns a seed, a scenario mix and a count into a list of
  :class:`Visit` objects. It is pure: the same arguments give the same list.
  A visit holds abstract choices (the n-th product, the k-th customer, whether
  the card is declined), not URLs, because the catalog is only known at run time.
* :class:`TrafficRun` discovers the catalog through the API, then plays the
  visits on a fixed open-loop schedule (visit ``i`` is due at ``i / rate``
  seconds), with at most ``concurrency`` visits in flight. A visit that finds
  no free slot when it is due waits for one and is counted as *behind
  schedule*: it is never dropped, so the summary shows when the target was
  too slow for the rate.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = [
    "DEFAULT_MIX",
    "SCENARIOS",
    "Summary",
    "TrafficRun",
    "Visit",
    "is_loopback_url",
    "parse_mix",
    "plan_requests",
]

SCENARIOS = ("browse", "search", "product", "login", "checkout", "staff-edit")
DEFAULT_MIX: dict[str, int] = {
    "browse": 50,
    "search": 15,
    "product": 20,
    "login": 5,
    "checkout": 5,
    "staff-edit": 5,
}
CUSTOMERS = 50
CUSTOMER_PASSWORD = "password"
STAFF = ("staff", "staff-password")
GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000000000000002"
SEARCH_TERMS = ("chef", "black", "yo-yo", "knife", "white", "lamp", "mug", "xyz")
ORDERINGS = ("", "price", "-price", "name", "-name", "created_at", "-created_at")
# One checkout in DECLINE_EVERY uses a declined card, by position in the plan,
# so that the share is exact and the same for every seed.
DECLINE_EVERY = 10
_CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True, slots=True)
class Visit:
    """One planned user action; ``choice`` values are resolved at run time."""

    scenario: str
    variant: str
    pick: int = 0
    page: int = 1
    extra: int = 0
    declined: bool = False
    cancel: bool = False


def parse_mix(text: str) -> dict[str, int]:
    """Parse ``browse=50,search=15,...`` into weights; missing scenarios get 0."""
    mix = dict.fromkeys(SCENARIOS, 0)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in mix:
            raise ValueError(
                f"bad mix entry {item!r}: use NAME=WEIGHT with NAME one of "
                + ", ".join(SCENARIOS)
            )
        try:
            weight = int(value)
        except ValueError:
            raise ValueError(f"bad weight in {item!r}: not an integer") from None
        if weight < 0:
            raise ValueError(f"bad weight in {item!r}: negative")
        mix[name] = weight
    if not any(mix.values()):
        raise ValueError("the mix gives every scenario a weight of 0")
    return mix


def plan_requests(seed: int, mix: Mapping[str, int], n: int) -> list[Visit]:
    """The first ``n`` visits for ``seed`` and ``mix``; pure and deterministic."""
    rng = random.Random(seed)
    names = [name for name in SCENARIOS if mix.get(name, 0) > 0]
    weights = [mix[name] for name in names]
    visits: list[Visit] = []
    checkouts = 0
    for _ in range(n):
        scenario = rng.choices(names, weights)[0]
        pick = rng.randrange(1 << 30)
        page = rng.randint(1, 3)
        extra = rng.randrange(1 << 30)
        declined = cancel = False
        if scenario == "browse":
            variant = rng.choice(("html-list", "html-category", "api-list", "api-cat"))
        elif scenario == "search":
            variant = rng.choice(("api", "html"))
        elif scenario == "product":
            variant = rng.choice(("html", "api"))
        elif scenario == "login":
            variant = rng.choice(("token", "form"))
        elif scenario == "checkout":
            variant = "api"
            declined = checkouts % DECLINE_EVERY == DECLINE_EVERY - 1
            cancel = not declined and rng.random() < 0.2
            checkouts += 1
        else:
            variant = rng.choice(("price", "description"))
        visits.append(Visit(scenario, variant, pick, page, extra, declined, cancel))
    return visits


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine (``localhost`` or a loopback address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name: it may resolve anywhere, so it is remote


@dataclass
class Catalog:
    """What the visits choose from, discovered through the API before the run."""

    products: list[dict[str, Any]]
    categories: list[str]


@dataclass
class Summary:
    """What happened during a run; :meth:`as_dict` is the ``--json`` output."""

    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0
    planned: int = 0
    visits: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    behind_schedule: int = 0
    orders_created: list[str] = field(default_factory=list)
    orders_declined: int = 0
    orders_cancelled: int = 0
    interrupted: bool = False

    def record(self, scenario: str, status: int | str, seconds: float) -> None:
        """Count one request of ``scenario``: its status (or error) and latency."""
        self.requests[scenario] += 1
        self.statuses.setdefault(scenario, Counter())[str(status)] += 1
        self.latencies.setdefault(scenario, []).append(seconds)
        if isinstance(status, str):
            self.errors[scenario] += 1

    def status_classes(self) -> Counter[str]:
        """Request counts by ``2xx``/``3xx``/``4xx``/``5xx``/``error``."""
        classes: Counter[str] = Counter()
        for counts in self.statuses.values():
            for status, count in counts.items():
                key = f"{status[0]}xx" if status.isdigit() else "error"
                classes[key] += count
        return classes

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary: totals, per scenario, latency in milliseconds."""
        every = [s for values in self.latencies.values() for s in values]
        elapsed = self.elapsed or (time.monotonic() - self.started)
        total = sum(self.requests.values())
        return {
            "elapsed_s": round(elapsed, 3),
            "planned_visits": self.planned,
            "visits": sum(self.visits.values()),
            "requests": total,
            "rate_per_s": round(total / elapsed, 2) if elapsed > 0 else 0.0,
            "behind_schedule": self.behind_schedule,
            "interrupted": self.interrupted,
            "status_classes": dict(sorted(self.status_classes().items())),
            "errors": sum(self.errors.values()),
            "latency_ms": _percentiles(every),
            "orders": {
                "created": len(self.orders_created),
                "declined": self.orders_declined,
                "cancelled": self.orders_cancelled,
                "numbers": list(self.orders_created),
            },
            "scenarios": {
                name: {
                    "visits": self.visits[name],
                    "requests": self.requests[name],
                    "statuses": dict(sorted(self.statuses.get(name, {}).items())),
                    "latency_ms": _percentiles(self.latencies.get(name, [])),
                }
                for name in SCENARIOS
                if self.visits[name] or self.requests[name]
            },
        }


def _percentiles(seconds: list[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)

    def at(q: float) -> float | None:
        if not ordered:
            return None
        index = min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)
        return round(ordered[max(index, 0)] * 1000, 2)

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)}


def _no_cookies() -> CookieJar:
    # The shared client must not keep cookies: a session cookie from one
    # visit would make DRF treat later API calls as that user's session.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class TrafficRun:
    """Plays a list of visits against ``url`` on an open-loop schedule."""

    def __init__(
        self,
        url: str,
        visits: list[Visit],
        *,
        rate: float,
        concurrency: int,
        duration: float | None = None,
        timeout: float = 10.0,
        customers: int = CUSTOMERS,
    ) -> None:
        self.url = url.rstrip("/")
        self.visits = visits
        self.rate = rate
        self.concurrency = concurrency
        self.duration = duration
        self.timeout = timeout
        self.customers = customers
        self.summary = Summary(planned=len(visits))
        self.stop = asyncio.Event()
        self._tokens: dict[str, str] = {}
        self._catalog = Catalog([], [])

    async def run(self, on_tick: Callable[[Summary], None] | None = None) -> Summary:
        """Discover the catalog, play every visit, return the summary."""
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        async with httpx.AsyncClient(
            base_url=self.url,
            timeout=self.timeout,
            limits=limits,
            cookies=_no_cookies(),
            follow_redirects=False,
        ) as client:
            self._catalog = await discover(client)
            self.summary.started = time.monotonic()
            await self._play(client, on_tick)
        self.summary.elapsed = time.monotonic() - self.summary.started
        return self.summary

    async def _play(
        self, client: httpx.AsyncClient, on_tick: Callable[[Summary], None] | None
    ) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        for index, visit in enumerate(self.visits):
            due = start + index / self.rate
            if self.duration is not None and due - start >= self.duration:
                break
            if await self._wait_until(due):
                break
            if slots.locked():
                self.summary.behind_schedule += 1
            acquire = asyncio.ensure_future(slots.acquire())
            stopped = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not acquire.done() or acquire.cancelled():
                acquire.cancel()
                break
            task = asyncio.create_task(self._visit(client, visit, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if on_tick is not None:
                on_tick(self.summary)
        if self.stop.is_set():
            self.summary.interrupted = True
            for task in tasks:
                task.cancel()
        while tasks:
            await asyncio.wait(set(tasks), timeout=0.25)
            if on_tick is not None:
                on_tick(self.summary)

    async def _wait_until(self, due: float) -> bool:
        """Wait for ``due`` (monotonic); True if the run was stopped meanwhile."""
        delay = due - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except TimeoutError:
                pass
        return self.stop.is_set()

    async def _visit(
        self, client: httpx.AsyncClient, visit: Visit, slots: asyncio.Semaphore
    ) -> None:
        try:
            self.summary.visits[visit.scenario] += 1
            action = _ACTIONS[visit.scenario]
            await action(self, client, visit)
        except asyncio.CancelledError:
            raise
        except _VisitAborted:
            pass
        finally:
            slots.release()

    async def _request(
        self,
        client: httpx.AsyncClient,
        scenario: str,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> httpx.Response:
        began = time.monotonic()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            name = type(exc).__name__
            self.summary.record(scenario, name, time.monotonic() - began)
            raise _VisitAborted from exc
        self.summary.record(scenario, response.status_code, time.monotonic() - began)
        return response

    def _product(self, visit: Visit) -> dict[str, Any]:
        products = self._catalog.products
        return products[visit.pick % len(products)]

    async def _token(
        self, client: httpx.AsyncClient, scenario: str, user: str, password: str
    ) -> str:
        if user not in self._tokens:
            response = await self._request(
                client,
                scenario,
                "POST",
                "/api/auth/token/",
                json={"username": user, "password": password},
            )
            if response.status_code != 200:
                raise _VisitAborted
            self._tokens[user] = response.json()["token"]
        return self._tokens[user]

    async def _browse(self, client: httpx.AsyncClient, visit: Visit) -> None:
        categories = self._catalog.categories
        category = categories[visit.extra % len(categories)] if categories else ""
        if visit.variant == "html-list":
            params: dict[str, Any] = {"page": visit.page}
            await self._request(client, "browse", "GET", "/products/", params=params)
        elif visit.variant == "html-category":
            params = {"category": category}
            await self._request(client, "browse", "GET", "/products/", params=params)
        elif visit.variant == "api-list":
            params = {"page": visit.page, "page_size": 10}
            ordering = ORDERINGS[visit.extra % len(ORDERINGS)]
            if ordering:
                params["ordering"] = ordering
            path = "/api/products/"
            await self._request(client, "browse", "GET", path, params=params)
        else:
            params = {"category": category}
            path = "/api/products/"
            await self._request(client, "browse", "GET", "/api/categories/")
            await self._request(client, "browse", "GET", path, params=params)

    async def _search(self, client: httpx.AsyncClient, visit: Visit) -> None:
        term = SEARCH_TERMS[visit.pick % len(SEARCH_TERMS)]
        path = "/api/products/" if visit.variant == "api" else "/products/"
        await self._request(client, "search", "GET", path, params={"q": term})

    async def _show_product(self, client: httpx.AsyncClient, visit: Visit) -> None:
        product = self._product(visit)
        if visit.variant == "html":
            path = f"/products/{product['slug']}/"
            await self._request(client, "product", "GET", path)
        else:
            path = f"/api/products/{product['id']}/"
            await self._request(client, "product", "GET", path)
            await self._request(client, "product", "GET", f"{path}availability/")

    async def _login(self, client: httpx.AsyncClient, visit: Visit) -> None:
        user = f"customer{visit.pick % self.customers + 1}"
        if visit.variant == "token":
            response = await self._request(
                client,
                "login",
                "POST",
                "/api/auth/token/",
                json={"username": user, "password": CUSTOMER_PASSWORD},
            )
            if response.status_code == 200:
                token = response.json()["token"]
                headers = {"Authorization": f"Token {token}"}
                await self._request(client, "login", "GET", "/api/me/", headers=headers)
            return
        page = await self._request(client, "login", "GET", "/accounts/login/")
        found = _CSRF_FIELD.search(page.content)
        csrf = page.cookies.get("csrftoken")
        if found is None or csrf is None:
            return
        form = {
            "username": user,
            "password": CUSTOMER_PASSWORD,
            "csrfmiddlewaretoken": found.group(1).decode(),
            "next": "/orders/",
        }
        response = await self._request(
            client,
            "login",
            "POST",
            "/accounts/login/",
            data=form,
            headers={"Cookie": f"csrftoken={csrf}"},
        )
        session = response.cookies.get("sessionid")
        if response.status_code == 302 and session:
            cookie = f"csrftoken={csrf}; sessionid={session}"
            headers = {"Cookie": cookie}
            await self._request(client, "login", "GET", "/orders/", headers=headers)

    async def _checkout(self, client: httpx.AsyncClient, visit: Visit) -> None:
        user = f"customer{visit.extra % self.customers + 1}"
        token = await self._token(client, "checkout", user, CUSTOMER_PASSWORD)
        headers = {"Authorization": f"Token {token}"}
        product = self._product(visit)
        body = {
            "items": [{"product": product["id"], "quantity": visit.page % 2 + 1}],
            "card_number": DECLINED_CARD if visit.declined else GOOD_CARD,
        }
        response = await self._request(
            client, "checkout", "POST", "/api/orders/", json=body, headers=headers
        )
        if response.status_code == 402:
            self.summary.orders_declined += 1
            return
        if response.status_code != 201:
            return
        order = response.json()
        self.summary.orders_created.append(order["number"])
        if visit.cancel and order.get("status") == "confirmed":
            path = f"/api/orders/{order['number']}/cancel/"
            cancelled = await self._request(
                client, "checkout", "POST", path, headers=headers
            )
            if cancelled.status_code == 200:
                self.summary.orders_cancelled += 1

    async def _staff_edit(self, client: httpx.AsyncClient, visit: Visit) -> None:
        token = await self._token(client, "staff-edit", *STAFF)
        headers = {"Authorization": f"Token {token}"}
        product = self._product(visit)
        # Edits keep the catalog sane over long runs: the price is re-saved as
        # discovered, and the description gets one suffix, not a growing one.
        if visit.variant == "price":
            body = {"price": product["price"]}
        else:
            body = {"description": f"{product['description']} (edit {visit.page})"}
        path = f"/api/products/{product['id']}/"
        await self._request(
            client, "staff-edit", "PATCH", path, json=body, headers=headers
        )


class _VisitAborted(Exception):
    """A request of a visit failed in transport; the rest of the visit is skipped."""


Action = Callable[[TrafficRun, httpx.AsyncClient, Visit], Awaitable[None]]
_ACTIONS: dict[str, Action] = {
    "browse": TrafficRun._browse,
    "search": TrafficRun._search,
    "product": TrafficRun._show_product,
    "login": TrafficRun._login,
    "checkout": TrafficRun._checkout,
    "staff-edit": TrafficRun._staff_edit,
}


async def discover(client: httpx.AsyncClient) -> Catalog:
    """Read the active products and the categories through the API."""
    products: list[dict[str, Any]] = []
    for page in (1, 2):
        response = await client.get(
            "/api/products/", params={"page": page, "page_size": 100}
        )
        if response.status_code != 200:
            break
        data = response.json()
        products.extend(data["results"])
        if not data.get("next"):
            break
    if not products:
        raise RuntimeError(f"no products at {client.base_url}api/products/")
    response = await client.get("/api/categories/", params={"page_size": 100})
    categories: list[str] = []
    if response.status_code == 200:
        categories = [item["slug"] for item in response.json()["results"]]
    products.sort(key=lambda item: item["id"])
    return Catalog(products, categories)
