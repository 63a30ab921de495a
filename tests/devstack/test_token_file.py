"""The admin token file ``strangler up`` keeps across restarts: real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from strangler_proxy.devstack.token_file import read_or_create_token
from strangler_proxy.exceptions import TokenFileError


def test_the_first_start_writes_a_token_only_its_owner_can_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "admin-token"
    token = read_or_create_token(path)
    assert token.created
    assert len(token.value) >= 32
    assert path.read_text() == token.value + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_later_starts_keep_the_token(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    first = read_or_create_token(path)
    again = read_or_create_token(path)
    assert again.value == first.value
    assert not again.created


def test_rotating_writes_a_new_token(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    first = read_or_create_token(path)
    rotated = read_or_create_token(path, rotate=True)
    assert rotated.created and rotated.value != first.value
    assert read_or_create_token(path).value == rotated.value


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_a_token_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "admin-token"
    path.write_text("secret\n")
    os.chmod(path, mode)
    with pytest.raises(TokenFileError) as caught:
        read_or_create_token(path)
    message = str(caught.value)
    assert f"is readable or writable by group or others (mode {mode:04o})" in message
    assert f"chmod 600 {path}" in message and "--rotate-admin-token" in message
    assert path.read_text() == "secret\n"  # nothing lost
    # Rotating replaces it, mode 0600.
    assert read_or_create_token(path, rotate=True).value != "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("secret\n")
    os.chmod(target, 0o600)
    path = tmp_path / "admin-token"
    path.symlink_to(target)
    with pytest.raises(TokenFileError, match="cannot read the token"):
        read_or_create_token(path)
    # Rotating replaces the link by a private file; what it pointed at is
    # neither read nor written.
    rotated = read_or_create_token(path, rotate=True)
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == rotated.value + "\n"
    assert target.read_text() == "secret\n"


@pytest.mark.parametrize("content", [b"", b"\n", b"two words\n", b"\xff\xfe\n"])
def test_a_file_that_holds_no_token_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(TokenFileError, match="not a token"):
        read_or_create_token(path)
