"""The edge's write coalescing: a response's head goes out with its body."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from strangler_proxy.proxy.edge import _EdgeTransport

pytestmark = pytest.mark.anyio


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> Any:
        return None

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _wrap() -> tuple[_EdgeTransport, _Recorder]:
    real = _Recorder()
    return _EdgeTransport(real, object()), real  # type: ignore[arg-type]


async def test_head_and_small_body_are_one_write() -> None:
    transport, real = _wrap()
    transport.cork = True
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == []
    transport.write(b"body")
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"more")  # not corked any more
    assert real.writes[-1] == b"more"


async def test_a_held_head_goes_out_on_the_next_loop_turn() -> None:
    transport, real = _wrap()
    transport.cork = True
    transport.write(b"head")
    await asyncio.sleep(0)
    assert real.writes == [b"head"]


async def test_a_large_body_is_not_copied_into_the_head() -> None:
    transport, real = _wrap()
    transport.cork = True
    transport.write(b"head")
    big = bytes(64 * 1024)
    transport.write(big)
    assert real.writes == [b"head", big]


async def test_nothing_held_is_written_to_a_closing_transport() -> None:
    transport, real = _wrap()
    transport.cork = True
    transport.write(b"head")
    real.closing = True
    transport.flush()
    assert real.writes == []


async def test_without_cork_writes_go_straight_through() -> None:
    transport, real = _wrap()
    transport.write(b"a")
    transport.write(b"b")
    assert real.writes == [b"a", b"b"]
