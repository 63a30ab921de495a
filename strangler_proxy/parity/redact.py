"""Redaction: what is stored never holds a secret or a person's data.

Applied to examples before they are written, never to what is compared.
Masked values become ``"***"`` and the document keeps its shape, so a reviewer
still sees which field differed. Three layers:

* credential headers (``Authorization``, ``Cookie``, ``Set-Cookie``,
  ``Proxy-Authorization`` and names that say token, secret or key);
* the route's ``sensitive`` body paths, e.g. ``body.**.email``;
* a safety net everywhere: values that look like an email address, a payment
  card number (13 to 19 digits passing the Luhn check), a bearer token or a
  JWT, members named like a secret (``password``, ``token``, ...), and the
  values of secret-looking query parameters (``?token=...``, ``&api_key=...``)
  in the request target and in any URL of a header or body.

The query parameter names (:func:`is_secret_param`) and the credential headers
(:data:`SECRET_HEADERS`) are the toolkit's one list: the access log
(:mod:`strangler_proxy.observe.logs`) redacts with them too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus

import orjson

from .paths import MatchState, PathMatcher, parse_path, parse_pattern

__all__ = [
    "MASK",
    "SECRET_HEADERS",
    "Redactor",
    "is_secret_param",
    "looks_sensitive",
    "luhn_valid",
    "mask_query_params",
    "mask_text",
    "redact_query",
    "redact_target",
]

MASK = "***"
_MAX_STORED_BODY = 64 * 1024

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
"""Headers whose values are credentials, whatever they look like."""

# A query parameter is secret when one of its words is in _SECRET_WORDS
# (``api_key``, ``X-Session-Id``) or its name contains a _SECRET_PARTS entry
# (``access_token``, ``newpassword``). Over-redacting is the safe side.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "sig", "signature", "auth", "pwd", "code", "jwt", "sid"}
)
_SECRET_PARTS = ("token", "passw", "secret", "session", "credential")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
# ``name=value`` after ``?``, ``&`` or ``;`` (``&amp;`` in HTML): a query
# parameter inside any text, e.g. a URL in a Location header or a JSON string.
_QUERY_PARAM = re.compile(r"(?<=[?&;])([^=&#\s\"'<>;?]+)=([^&#\s\"'<>]*)")
_SECRET_NAME = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|auth|session|csrf|cvv|cvc|ssn"
    r"|card[-_]?number|iban)",
    re.IGNORECASE,
)
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_BEARER = re.compile(r"(?i)\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def is_secret_param(name: str) -> bool:
    """True when a query parameter name looks like it carries a secret."""
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    return any(word in _SECRET_WORDS for word in _WORD_SPLIT.split(lowered))


def redact_query(
    query: str, mask: str = MASK, *, scrub: Callable[[str], str] | None = None
) -> str:
    """A query string with the values of secret-looking parameters masked.

    ``scrub``, if given, is applied to the values that are kept (the parity
    store passes :func:`mask_text`: an email address in ``?email=`` goes too).
    Parameters keep their order; names and kept values are re-encoded.
    """
    if not query:
        return query
    safe = "[]*" if scrub is not None else "[]"
    parts = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if is_secret_param(name):
            shown = mask
        else:
            shown = quote(scrub(value) if scrub is not None else value, safe=safe)
        parts.append(f"{quote(name, safe='')}={shown}")
    return "&".join(parts)


def redact_target(target: str, mask: str = MASK) -> str:
    """A request target (``/path?query#fragment``) fit for storage: secret
    query parameters masked (:func:`redact_query`), the rest by the safety net."""
    path, sep, rest = target.partition("?")
    path = mask_text(path)
    if not sep:
        return path
    query, hash_sep, fragment = rest.partition("#")
    tail = hash_sep + mask_text(fragment) if hash_sep else ""
    return f"{path}?{redact_query(query, mask, scrub=mask_text)}{tail}"


def mask_query_params(text: str, mask: str = MASK) -> str:
    """``text`` with the value of every secret-looking ``?name=value`` or
    ``&name=value`` masked, wherever it appears (URLs in headers and bodies)."""
    if "=" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if is_secret_param(unquote_plus(match.group(1))):
            return f"{match.group(1)}={mask}"
        return match.group()

    return _QUERY_PARAM.sub(replace, text)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = ord(char) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", match.group())
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def looks_sensitive(text: str) -> bool:
    """Whether ``text`` holds an email, a card number, a bearer token or a JWT."""
    if _EMAIL.search(text) or _BEARER.search(text) or _JWT.search(text):
        return True
    return any(_card(m) for m in _CARD.finditer(text))


def mask_text(text: str) -> str:
    """``text`` with every sensitive-looking part replaced by ``***``."""
    text = _EMAIL.sub(MASK, text)
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(MASK, text)
    text = mask_query_params(text)
    return _CARD.sub(lambda m: MASK if _card(m) else m.group(), text)


State = MatchState[bool] | None

_TARGET_KEYS = frozenset({"target", "path", "url", "uri"})


def _any(payloads: tuple[bool, ...]) -> bool:
    return bool(payloads)


class Redactor:
    """Masks secrets in the pieces of an example before they are stored."""

    def __init__(self, sensitive: Iterable[str] = ()) -> None:
        patterns = [(parse_pattern(p), True) for p in sensitive]
        self._matcher: PathMatcher[bool, bool] = PathMatcher(patterns, _any)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with credential values masked."""
        out = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower in SECRET_HEADERS or _SECRET_NAME.search(lower):
                out[lower] = MASK
            else:
                out[lower] = mask_text(value)
        return out

    def body(self, body: bytes, content_type: str = "") -> str:
        """A body as text fit for storage: JSON redacted by path, text masked."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        else:
            redacted = self._walk(data, self._step(self._matcher.root, "body"))
            text = orjson.dumps(redacted).decode()
            return _clip(text)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(body)} bytes, not text>"
        return _clip(mask_text(text))

    def value(self, path: str, value: Any) -> Any:
        """A value found at ``path`` (in a difference), redacted."""
        state = self._matcher.root
        try:
            segments = parse_path(path)
        except ValueError:
            segments = ()
        for key in segments:
            state = self._step(state, key)
            if state is not None and state.value:
                return MASK
            if isinstance(key, str) and _SECRET_NAME.search(key):
                return MASK
        return self._walk(value, state)

    def mapping(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Request metadata redacted: ``headers`` as headers, a ``target``
        (``/path?query``) or ``query`` with its secret parameters masked, the
        rest by the safety net."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "headers" and isinstance(value, Mapping):
                out[key] = self.headers(value)
            elif key in _TARGET_KEYS and isinstance(value, str):
                out[key] = redact_target(value)
            elif key == "query" and isinstance(value, str):
                out[key] = redact_query(value, scrub=mask_text)
            elif isinstance(value, str):
                out[key] = mask_text(value)
            else:
                out[key] = self._walk(value, None)
        return out

    def _step(self, state: State, key: str | int) -> State:
        return self._matcher.step(state, key)

    def _walk(self, value: Any, state: State) -> Any:
        if state is not None and state.value:
            return MASK
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if _SECRET_NAME.search(key) and item is not None:
                    out[key] = MASK
                else:
                    out[key] = self._walk(item, self._step(state, key))
            return out
        if isinstance(value, list):
            return [
                self._walk(item, self._step(state, i)) for i, item in enumerate(value)
            ]
        if isinstance(value, str):
            return MASK if looks_sensitive(value) else mask_query_params(value)
        if isinstance(value, int) and not isinstance(value, bool):
            digits = str(abs(value))
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                return MASK
        return value


def _clip(text: str) -> str:
    if len(text) <= _MAX_STORED_BODY:
        return text
    return text[:_MAX_STORED_BODY] + f"… ({len(text) - _MAX_STORED_BODY} more)"
