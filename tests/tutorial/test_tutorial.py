"""The tutorial, executed: every ``console`` block of ``docs/tutorial/``, in order.

The stack starts as page 01 starts it, with ``strangler up`` as a real process;
the substitutions the harness makes (ports, state directory, plan copies) are
printed at the start. Blocks marked ``skip`` need a command still being built:
each is reported as a skipped test of its own, with its reason, so the list of
what the tutorial does not yet exercise is visible in every run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .harness import Stack, run_check
from .pages import Block, all_blocks

BLOCKS = all_blocks()
PENDING = [block for block in BLOCKS if "skip" in block.attributes]


@pytest.mark.e2e
@pytest.mark.timeout(300)
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


@pytest.mark.parametrize("block", PENDING, ids=[block.where for block in PENDING])
def test_pending_step(block: Block) -> None:
    """A block the tutorial shows but the test cannot run yet."""
    pytest.skip(f"{block.where}: {block.first('skip')}")
