"""A secret token kept in a file only its owner can read, across restarts.

``strangler up`` keeps the admin API's token in ``<var-dir>/admin-token``: the
first start writes a new one (mode 0600), every later start reads it back, so
the dashboard's cookie and the scripts holding the token keep working.
:func:`read_or_create_token` refuses a file that someone else could read or
change (group or other permission bits, another owner, a symlink): a leaked
token is a remote control of the traffic, and using it silently would hide
the leak. Rotating writes a new token in place, mode 0600. The stack's
internal token (:mod:`.internal_token`) is kept the same way.
"""

from __future__ import annotations

import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from strangler_proxy.exceptions import TokenFileError

__all__ = ["ROTATE_ADMIN_TOKEN", "Token", "read_or_create_token", "write_token"]

_MAX_BYTES = 4096
ROTATE_ADMIN_TOKEN = "pass --rotate-admin-token to write a new one"


@dataclass(frozen=True)
class Token:
    """A token and whether this call wrote it (created or rotated)."""

    value: str
    path: Path
    created: bool


def write_token(path: Path, token: str) -> None:
    """Write ``token`` to ``path``, readable by the owner only (0600).

    Written under another name and moved into place: a reader never sees half
    a token, nor a file others can read, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_or_create_token(
    path: Path, *, rotate: bool = False, remedy: str = ROTATE_ADMIN_TOKEN
) -> Token:
    """The token in ``path``; a new one when there is none or ``rotate``.

    Raises :class:`TokenFileError` when the file exists but is not a regular
    file of this user, mode 0600 or stricter, holding one line of text; the
    message ends with ``remedy``, what the user can do about it.
    """
    if rotate:
        return _new(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _new(path)
    except OSError as exc:
        # ELOOP: a symlink, which O_NOFOLLOW refuses.
        raise TokenFileError(
            f"{path}: cannot read the token ({exc.strerror}); remove it, or {remedy}"
        ) from None
    try:
        info = os.fstat(fd)
        _check(path, info, remedy)
        raw = os.read(fd, _MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        value = ""
    if not value or len(raw) > _MAX_BYTES or any(c.isspace() for c in value):
        raise TokenFileError(
            f"{path}: not a token (one line of text expected); remove it, or {remedy}"
        )
    return Token(value, path, created=False)


def _check(path: Path, info: os.stat_result, remedy: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise TokenFileError(f"{path}: not a regular file")
    if info.st_uid != os.geteuid():
        raise TokenFileError(
            f"{path} belongs to uid {info.st_uid}, not to this user "
            f"(uid {os.geteuid()}): refusing a token someone else controls"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise TokenFileError(
            f"{path} is readable or writable by group or others (mode "
            f"{mode:04o}): the token may have leaked. Run `chmod 600 {path}` to "
            f"keep it, or {remedy}"
        )


def _new(path: Path) -> Token:
    token = secrets.token_urlsafe(32)
    try:
        write_token(path, token)
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot write the token: {exc}") from None
    return Token(token, path, created=True)
