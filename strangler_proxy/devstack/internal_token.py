"""The internal token of a ``strangler up`` stack.

Every ``/internal/`` endpoint of the monolith and of the services requires
``Authorization: Bearer $STRANGLER_INTERNAL_TOKEN``, and the relays send it.
``up`` passes one token to all of them: ``STRANGLER_INTERNAL_TOKEN`` when it is
set, else the one in ``<var-dir>/internal-token``, generated on the first start
(mode 0600) and kept, so that restarts, and commands run beside the stack
(``STRANGLER_INTERNAL_TOKEN=$(cat var/internal-token) strangler relay ...``),
agree on it. A token file that someone else could read or change (group or
other permission bits, another owner, a symlink) is refused, not used: the
token may have leaked.
"""

from __future__ import annotations

import os
import secrets
import stat
import uuid
from collections.abc import Mapping
from pathlib import Path

from strangler_proxy.exceptions import TokenFileError

__all__ = ["TOKEN_FILE", "TOKEN_VARIABLE", "internal_token"]

TOKEN_VARIABLE = "STRANGLER_INTERNAL_TOKEN"
TOKEN_FILE = "internal-token"
_MAX_BYTES = 4096


def internal_token(var_dir: Path, environ: Mapping[str, str]) -> tuple[str, str]:
    """The stack's internal token and where it comes from (for people):
    ``$STRANGLER_INTERNAL_TOKEN``, or the path of the token file.

    Raises :class:`TokenFileError` when the file cannot be used.
    """
    token = environ.get(TOKEN_VARIABLE, "").strip()
    if token:
        return token, f"${TOKEN_VARIABLE}"
    path = var_dir / TOKEN_FILE
    return _read(path) or _create(path), str(path)


def _read(path: Path) -> str | None:
    remedy = f"remove {path} to have a new token generated"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # ELOOP: a symlink, which O_NOFOLLOW refuses.
        raise TokenFileError(
            f"{path}: cannot read it ({exc.strerror}); {remedy}"
        ) from None
    try:
        info = os.fstat(fd)
        raw = os.read(fd, _MAX_BYTES + 1)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        raise TokenFileError(f"{path}: not a regular file of this user; {remedy}")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise TokenFileError(
            f"{path} is readable or writable by group or others (mode {mode:04o}): "
            f"the internal token may have leaked; {remedy}"
        )
    value = raw.decode("ascii", "replace").strip()
    if not value or len(raw) > _MAX_BYTES or any(c.isspace() for c in value):
        raise TokenFileError(f"{path}: not a token (one line of text); {remedy}")
    return value


def _create(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under another name and moved into place: never half a token,
    # and never readable by others, not even for a moment.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TokenFileError(
            f"{path}: cannot write the internal token: {exc}"
        ) from None
    return token
