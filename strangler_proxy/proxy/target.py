"""Request-target checks and normalisation: route on what is forwarded.

A proxy that routes on one reading of a path and forwards another lets a client
reach a route it should not (``/public/..%2Fadmin``). So the target is
normalised once, here, and both the router and the upstream get the result:

* only origin-form targets (``/path?query``), plus ``*`` for ``OPTIONS``;
* percent-encoding is validated; encoded unreserved characters are decoded and
  hex digits upper-cased (RFC 3986 §6.2.2); everything else stays encoded as
  the client sent it;
* dot segments are removed (RFC 3986 §5.2.4); ``..`` above the root is refused;
* runs of ``/`` are merged into one (nginx's ``merge_slashes``), so ``//admin``
  is never routed apart from ``/admin``; the merged path is what is forwarded;
* NUL (raw or ``%00``), control characters and backslashes are refused, and so
  are ``%2F``/``%5C`` unless ``path_security`` is ``permissive``, in which case
  they pass through untouched and are not treated as separators for routing.

The query string is forwarded byte for byte.

:class:`ReservedPaths` says whether a normalised path is one the plan keeps
from clients (``proxy.reserved``, ``/internal/`` always): checked on the same
path the router sees, so no spelling of it (``//internal``, ``/%69nternal``,
``/api/../internal``) slips through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from strangler_proxy.exceptions import PathError

__all__ = ["RequestTarget", "ReservedPaths", "normalise_target"]

_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Anything that forces the slow path: escapes, possible dot segments, empty
# segments, bytes outside printable ASCII, backslashes.
_NEEDS_WORK = re.compile(rb"[^\x21-\x7e]|[%\\]|/\.|//")
_SEPARATORS = (b"2F", b"5C")
_KEPT = re.compile("(%2F|%5C)", re.IGNORECASE)
_SLASHES = re.compile("/{2,}")


@dataclass(frozen=True, slots=True)
class RequestTarget:
    """A checked request target.

    ``raw_path`` is forwarded upstream (still percent-encoded), ``path`` is its
    decoded form used for routing and logs, ``query`` is the raw query string.
    """

    raw_path: bytes
    path: str
    query: bytes

    @property
    def target(self) -> bytes:
        """Path and query as they appear on the upstream request line."""
        return self.raw_path + b"?" + self.query if self.query else self.raw_path


def normalise_target(
    method: str, raw_path: bytes, query: bytes, *, permissive: bool = False
) -> RequestTarget:
    """Check and normalise a request target; raise :class:`PathError` if refused."""
    if raw_path == b"*":
        if method == "OPTIONS":
            return RequestTarget(b"*", "*", query)
        raise PathError("'*' is only allowed with OPTIONS")
    if not raw_path.startswith(b"/"):
        raise PathError("only origin-form request targets are accepted")
    if _NEEDS_WORK.search(raw_path) is None:
        return RequestTarget(raw_path, raw_path.decode("ascii"), query)
    segments = [_normalise_segment(seg, permissive) for seg in raw_path[1:].split(b"/")]
    out: list[bytes] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if not seg and i != last:
            continue  # "//": merged; only a trailing empty segment remains
        if seg == b".":
            if i == last:
                out.append(b"")
        elif seg == b"..":
            if not out:
                raise PathError("'..' goes above the root")
            out.pop()
            if i == last:
                out.append(b"")
        else:
            out.append(seg)
    normalised = b"/" + b"/".join(out)
    return RequestTarget(normalised, _decode(out, permissive), query)


def _normalise_segment(segment: bytes, permissive: bool) -> bytes:
    if b"%" not in segment and _NEEDS_WORK.search(segment) is None:
        return segment
    out = bytearray()
    i = 0
    n = len(segment)
    while i < n:
        byte = segment[i]
        if byte == 0x25:  # "%"
            hexpair = segment[i + 1 : i + 3]
            if len(hexpair) != 2 or not all(c in _HEX for c in hexpair):
                raise PathError("invalid percent-encoding")
            upper = hexpair.upper()
            value = int(upper, 16)
            if value == 0:
                raise PathError("NUL in path")
            if upper in _SEPARATORS:
                if not permissive:
                    raise PathError("encoded slash or backslash in path")
                out += b"%" + hexpair  # passed through untouched
            elif value in _UNRESERVED:
                out.append(value)
            else:
                out += b"%" + upper
            i += 3
            continue
        if byte == 0x5C:  # "\"
            raise PathError("backslash in path")
        if byte < 0x21 or byte == 0x7F:
            raise PathError("control character or space in path")
        if byte > 0x7F:
            # Raw non-ASCII bytes: encode them, as a browser would have.
            out += b"%%%02X" % byte
        else:
            out.append(byte)
        i += 1
    return bytes(out)


def _decode(segments: list[bytes], permissive: bool) -> str:
    decoded = []
    for seg in segments:
        text = seg.decode("ascii")
        if "%" in text:
            if permissive:
                # Keep %2F/%5C literal so they never act as separators.
                parts = _KEPT.split(text)
                text = "".join(
                    p if i % 2 else unquote(p, errors="replace")
                    for i, p in enumerate(parts)
                )
            else:
                text = unquote(text, errors="replace")
        decoded.append(text)
    return "/" + "/".join(decoded)


class ReservedPaths:
    """The path prefixes a client may not reach (``proxy.reserved``).

    A prefix ``/internal/`` reserves ``/internal`` and everything under
    ``/internal/``; paths are case-sensitive (RFC 3986 §6.2.2.1).
    """

    __slots__ = ("prefixes", "_bare", "_permissive")

    def __init__(self, prefixes: tuple[str, ...], *, permissive: bool) -> None:
        self.prefixes = prefixes
        self._bare = frozenset(p.rstrip("/") for p in prefixes)
        self._permissive = permissive

    def __contains__(self, path: str) -> bool:
        if path.startswith(self.prefixes) or path in self._bare:
            return True
        if self._permissive and "%" in path:
            # An upstream decodes the %2F that permissive mode passes through:
            # "/internal%2Fevents" is "/internal/events" to it.
            decoded = _SLASHES.sub("/", unquote(path, errors="replace"))
            return decoded.startswith(self.prefixes) or decoded in self._bare
        return False
