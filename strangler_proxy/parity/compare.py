"""The comparison of two responses to one request: :class:`Comparator`.

A comparator is built once per route from its ``parity:`` rules and used for
every request of the route (it is thread-safe). Status, the compared headers
(``content-type`` and the route's allow-list) and the body are compared; the
result separates regressions from noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from .config import ParityConfig
from .dataversion import LagJudge
from .diff import Differ, text_difference
from .noise import NoiseBaseline
from .paths import format_path
from .redact import Redactor
from .result import Difference, DiffKind, ParityResult, ResponseSnapshot

__all__ = ["Comparator", "is_json"]

_UNPARSED = object()


@lru_cache(maxsize=256)
def is_json(content_type: str) -> bool:
    """Whether a content type is JSON (``application/json``, ``*/*+json``)."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _content_type(value: str | None) -> str | None:
    # "application/json; charset=utf-8" and "application/json;charset=UTF-8"
    # are the same type: compare parameters without spaces or case.
    if value is None:
        return None
    return value.replace(" ", "").lower()


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _UNPARSED


class Comparator:
    """Compares a monolith response with a service response under rules.

    ``noise`` is the route's learned noise baseline; by default a new one with
    the configured ``learn_after``.
    """

    def __init__(
        self, config: ParityConfig | None = None, noise: NoiseBaseline | None = None
    ) -> None:
        self.config = config if config is not None else ParityConfig()
        self.differ = Differ(self.config)
        self.noise = (
            noise if noise is not None else NoiseBaseline(self.config.noise.learn_after)
        )
        self.redactor = Redactor(self.config.sensitive)
        self.lag = LagJudge(self.config.lag.max_seconds, self.config.lag.max_events)
        names = dict.fromkeys(("content-type", *self.config.headers))
        root = self.differ.matcher.root
        step = self.differ.matcher.step
        headers_state = step(root, "headers")
        self._headers = tuple(
            n for n in names if not self.differ.ignored(step(headers_state, n))
        )
        self._header_paths = {n: format_path(("headers", n)) for n in self._headers}
        self._status_ignored = self.differ.ignored(step(root, "status"))
        self._body_state = step(root, "body")
        self._body_ignored = self.differ.ignored(self._body_state)

    def compare(
        self,
        legacy: ResponseSnapshot,
        service: ResponseSnapshot,
        legacy_again: ResponseSnapshot | None = None,
    ) -> ParityResult:
        """Compare ``service`` with ``legacy``.

        ``legacy_again`` is a second monolith answer to the same request: the
        fields where it differs from ``legacy`` are noise for this comparison,
        and are counted towards the learned baseline.
        """
        if legacy_again is None and self._same(legacy, service):
            return ParityResult(matched=True)
        try:
            found = self.differences(legacy, service)
            direct: frozenset[str] = frozenset()
            if legacy_again is not None:
                direct = frozenset(
                    d.group for d in self.differences(legacy, legacy_again)
                )
                self.noise.observe(direct)
        except Exception as exc:  # a comparison must never fail the caller
            return ParityResult.failed(f"comparison failed: {exc!r}")
        if not found:
            return ParityResult(matched=True)
        regressions: list[Difference] = []
        noise: list[Difference] = []
        for difference in found:
            if self.noise.is_noise(difference.group, direct):
                noise.append(difference)
            else:
                regressions.append(difference)
        lag: str | None = None
        if regressions:
            verdict = self.lag.judge(legacy.headers, service.headers)
            if verdict is not None and verdict.lag:
                lag = verdict.detail
        return ParityResult(
            matched=not regressions, differences=regressions, noise=noise, lag=lag
        )

    def _same(self, legacy: ResponseSnapshot, service: ResponseSnapshot) -> bool:
        if legacy.body != service.body or legacy.status != service.status:
            return False
        lh, sh = legacy.headers, service.headers
        for name in self._headers:
            if lh.get(name) != sh.get(name):
                return False
        return True

    def differences(
        self, legacy: ResponseSnapshot, service: ResponseSnapshot
    ) -> list[Difference]:
        """Every difference under the rules, noise not separated."""
        out: list[Difference] = []
        if legacy.status != service.status and not self._status_ignored:
            out.append(Difference("status", "changed", legacy.status, service.status))
        self._diff_headers(legacy.headers, service.headers, out)
        if legacy.body != service.body and not self._body_ignored:
            self._diff_body(legacy, service, out)
        return out

    def _diff_headers(
        self, lh: Mapping[str, str], sh: Mapping[str, str], out: list[Difference]
    ) -> None:
        for name in self._headers:
            a, b = lh.get(name), sh.get(name)
            if a == b:
                continue
            if name == "content-type" and _content_type(a) == _content_type(b):
                continue
            path = self._header_paths[name]
            kind: DiffKind = (
                "missing" if b is None else "extra" if a is None else "changed"
            )
            out.append(Difference(path, kind, lh.get(name), sh.get(name), group=path))

    def _diff_body(
        self, legacy: ResponseSnapshot, service: ResponseSnapshot, out: list[Difference]
    ) -> None:
        if is_json(legacy.content_type) and is_json(service.content_type):
            a, b = _parse(legacy.body), _parse(service.body)
            if a is not _UNPARSED and b is not _UNPARSED:
                self.differ.diff(a, b, ("body",), self._body_state, out)
                return
        text = text_difference(legacy.body, service.body)
        if text is not None:
            out.append(text)
