"""Redaction: what is stored never holds a secret or a person's data.

Applied to examples before they are written, never to what is compared.
Masked values become ``"***"`` and the document keeps its shape, so a reviewer
still sees which field differed. Three layers:

* credential headers (``Authorization``, ``Cookie``, ``Set-Cookie``,
  ``Proxy-Authorization`` and names that say token, secret or key);
* the route's ``sensitive`` body paths, e.g. ``body.**.email``;
* a safety net everywhere: values that look like an email address, a payment
  card number (13 to 19 digits passing the Luhn check), a bearer token or a
  JWT, and members named like a secret (``password``, ``token``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from .paths import MatchState, PathMatcher, parse_path, parse_pattern

__all__ = ["MASK", "Redactor", "looks_sensitive", "luhn_valid"]

MASK = "***"
_MAX_STORED_BODY = 64 * 1024

_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
)
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
    return _CARD.sub(lambda m: MASK if _card(m) else m.group(), text)


State = MatchState[bool] | None


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
            if lower in _SECRET_HEADERS or _SECRET_NAME.search(lower):
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
        """Request metadata (path, query, headers ...) redacted by the safety net."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "headers" and isinstance(value, Mapping):
                out[key] = self.headers(value)
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
            return MASK if looks_sensitive(value) else value
        if isinstance(value, int) and not isinstance(value, bool):
            digits = str(abs(value))
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                return MASK
        return value


def _clip(text: str) -> str:
    if len(text) <= _MAX_STORED_BODY:
        return text
    return text[:_MAX_STORED_BODY] + f"… ({len(text) - _MAX_STORED_BODY} more)"
