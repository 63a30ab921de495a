"""The tutorial, executed: every ``console`` block of ``docs/tutorial/``, in order.

The stack starts as page 01 starts it, with ``strangler up`` as a real process;
the substitutions the harness makes (ports, state directory, plan copies) are
printed at the start. A block marked ``skip`` is not run, and fails
``test_every_block_runs``: every command the pages show is exercised.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .harness import Stack, run_check, sync_settled
from .pages import Block, all_blocks

BLOCKS = all_blocks()
PENDING = [block for block in BLOCKS if "skip" in block.attributes]


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_tutorial_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("the tutorial's pages use curl; install it")
    stack = Stack(tmp_path)
    print("tutorial harness substitutions:\n" + stack.describe())
    try:
        for block in BLOCKS:
            if "skip" in block.attributes:
                print(f"skipped {block.where}: {block.first('skip')}")
                continue
            output = run_block(stack, block)
            print(f"ran {block.where}:\n{output[-1500:]}")
        # However the pages end: nothing pending or parked, and no drift.
        sync_settled(stack)
    finally:
        stack.stop()


def run_block(stack: Stack, block: Block) -> str:
    """Run one block, check everything its comment promises; its output."""
    if block.first("after") == "ctrl-c":
        stack.stop()
    if block.first("run") == "background":
        output = stack.start(block)
    else:
        status, output = stack.run(block)
        wanted = int(block.first("exit") or 0)
        assert status == wanted, f"{block.where}: exit {status}:\n{output}"
    for expected in block.attributes.get("expect", []):
        assert stack.substitute(expected) in output, (
            f"{block.where}: {expected!r} not in the output:\n{output}"
        )
    for check in block.attributes.get("check", []):
        try:
            run_check(stack, check)
        except AssertionError as exc:
            raise AssertionError(f"{block.where}: check {check!r}: {exc}") from exc
    return output


def test_every_block_runs() -> None:
    """No page shows a command the test does not run: a ``skip`` is a step a
    newcomer would follow on faith."""
    assert PENDING == [], [f"{b.where}: {b.first('skip')}" for b in PENDING]
