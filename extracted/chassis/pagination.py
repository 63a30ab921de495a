"""Page-number pagination with DRF's exact behaviour and links.

``?page=N&page_size=M`` (default 20, capped at 100; an invalid ``page_size``
falls back to the default), ``page=last``, 404 ``{"detail": "Invalid page."}``
for a page that is not a number or out of range, and absolute ``next`` /
``previous`` URLs with the query parameters sorted by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from starlette.requests import Request

from .errors import NotFound

__all__ = ["Page", "paginate"]

Page = dict[str, Any]


def _page_size(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return default
    try:
        size = int(raw)
    except ValueError:
        return default
    if size <= 0:
        return default
    return min(size, maximum)


def _absolute_url(request: Request) -> str:
    host = request.headers.get("host", "")
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = request.scope.get("root_path", "") + request.scope["path"]
    return f"{request.url.scheme}://{host}{path}" + (f"?{query}" if query else "")


def _with_page(url: str, page: int | None) -> str:
    scheme, netloc, path, query, fragment = urlsplit(url)
    params = parse_qs(query, keep_blank_values=True)
    if page is None:
        params.pop("page", None)
    else:
        params["page"] = [str(page)]
    return urlunsplit(
        (scheme, netloc, path, urlencode(sorted(params.items()), doseq=True), fragment)
    )


def paginate(
    request: Request,
    count: int,
    fetch: Callable[[int, int], Sequence[Any]],
    render: Callable[[Any], Any],
    *,
    default_size: int = 20,
    max_size: int = 100,
) -> Page:
    """One page as ``{count, next, previous, results}``.

    ``fetch(offset, limit)`` loads the rows of the page; ``render`` turns one
    row into its JSON value.
    """
    size = _page_size(request, default_size, max_size)
    pages = math.ceil(max(1, count) / size)
    raw: str = request.query_params.get("page") or "1"
    try:
        number = pages if raw == "last" else int(raw)
    except ValueError:
        raise NotFound("Invalid page.") from None
    if number < 1 or number > pages:
        raise NotFound("Invalid page.")
    rows = fetch((number - 1) * size, size)
    url = _absolute_url(request)
    return {
        "count": count,
        "next": _with_page(url, number + 1) if number < pages else None,
        "previous": (
            None
            if number == 1
            else _with_page(url, None if number == 2 else number - 1)
        ),
        "results": [render(row) for row in rows],
    }
