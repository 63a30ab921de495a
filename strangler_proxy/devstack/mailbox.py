"""Requests to a running ``strangler up``: files only its own user can write.

``up`` opens a :class:`Mailbox` in ``<var-dir>/up-requests/``, a directory of
mode 0700. A command such as ``strangler sync apply`` calls :func:`send`: it
writes ``<id>.request.json`` (mode 0600, written under another name and then
renamed, so that ``up`` never reads half a request) and waits for
``<id>.response.json``. ``up`` takes the requests on its supervising thread
(:meth:`Mailbox.take`) and answers each one (:meth:`Mailbox.answer`).

Who may ask is decided by the file system, not by a peer address: the
directory belongs to the user running ``up`` and nobody else may enter it,
and ``up`` refuses (and deletes) a request file that is not a regular file of
that user with no group or other permission bits.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from strangler_proxy.exceptions import StackRequestError

__all__ = ["DIRECTORY", "Mailbox", "Request", "send"]

DIRECTORY = "up-requests"
_REQUEST = ".request.json"
_RESPONSE = ".response.json"
_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_BYTES = 64 * 1024
_POLL = 0.05  # seconds between two looks for the answer


@dataclass(frozen=True)
class Request:
    """One request taken from the mailbox: its id and its JSON object."""

    id: str
    body: Mapping[str, Any]


class Mailbox:
    """The receiving end, owned by ``up`` (see the module docs)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.refused: list[str] = []
        """Why each refused request file was refused, newest last."""

    def open(self) -> None:
        """Create the directory (0700) and drop what a previous ``up`` left."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        _check_directory(self.directory, mode=False)
        os.chmod(self.directory, 0o700)
        self._clear()

    def close(self) -> None:
        """Remove the directory: a command that asks now hears that none runs."""
        self._clear()
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def _clear(self) -> None:
        for entry in self.directory.iterdir():
            if entry.is_symlink() or entry.is_file():
                entry.unlink(missing_ok=True)

    def take(self) -> Request | None:
        """The oldest pending request, removed from the directory; else None.

        A file that is not a request of this user is deleted and, when it has
        a request's name, answered with the reason.
        """
        for path in sorted(self.directory.glob("*" + _REQUEST), key=_mtime):
            request_id = path.name.removesuffix(_REQUEST)
            try:
                body = _read_request(path)
            except (OSError, ValueError) as exc:
                path.unlink(missing_ok=True)
                reason = f"request {path.name} refused: {exc}"
                self.refused.append(reason)
                if _ID.match(request_id):
                    self.answer(request_id, {"ok": False, "error": reason})
                continue
            path.unlink(missing_ok=True)
            if not _ID.match(request_id):
                self.refused.append(f"request {path.name} refused: not a request id")
                continue
            return Request(request_id, body)
        return None

    def answer(self, request_id: str, response: Mapping[str, Any]) -> None:
        """Write the response to request ``request_id`` (0600, atomically)."""
        _write(self.directory, request_id + _RESPONSE, response)


def send(
    directory: Path,
    body: Mapping[str, Any],
    *,
    timeout: float,
    alive: Callable[[], bool],
) -> dict[str, Any]:
    """Ask the ``up`` whose mailbox is ``directory``; its answer.

    ``alive`` says whether that ``up`` still runs. Raises
    :class:`StackRequestError` when there is no mailbox, when ``up`` stops
    before it answers, or after ``timeout`` seconds without an answer (the
    request is withdrawn if ``up`` had not taken it yet).
    """
    try:
        _check_directory(directory)
    except FileNotFoundError:
        raise StackRequestError(
            f"no `strangler up` takes requests in {directory.parent} "
            f"({directory.name}/ does not exist)"
        ) from None
    except OSError as exc:
        raise StackRequestError(str(exc)) from None
    request_id = secrets.token_hex(16)
    request = directory / (request_id + _REQUEST)
    response = directory / (request_id + _RESPONSE)
    _write(directory, request.name, body)
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = _read(response)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            raise StackRequestError(
                f"{response}: cannot read the answer: {exc}"
            ) from None
        else:
            response.unlink(missing_ok=True)
            if not isinstance(data, dict):
                raise StackRequestError(f"{response}: not a JSON object")
            return data
        if not alive():
            request.unlink(missing_ok=True)
            raise StackRequestError("`strangler up` stopped before it answered")
        if time.monotonic() >= deadline:
            taken = not request.exists()
            request.unlink(missing_ok=True)
            raise StackRequestError(
                f"`strangler up` did not answer within {timeout:g}s"
                + (" (it took the request and may still apply it)" if taken else "")
            )
        time.sleep(_POLL)  # polling for the answer file, with a deadline


def _check_directory(directory: Path, *, mode: bool = True) -> None:
    """Refuse a mailbox someone else could use (``mode``: check its bits too)."""
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise OSError(f"{directory} belongs to uid {info.st_uid}, not to this user")
    bits = stat.S_IMODE(info.st_mode)
    if mode and bits & 0o077:
        raise OSError(f"{directory} is open to group or others (mode {bits:04o})")


def _read_request(path: Path) -> Mapping[str, Any]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_uid != os.geteuid():
            raise ValueError(f"it belongs to uid {info.st_uid}, not to this user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise ValueError(
                f"mode {stat.S_IMODE(info.st_mode):04o}: group or others may use it"
            )
        raw = os.read(fd, _MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_BYTES:
        raise ValueError(f"larger than {_MAX_BYTES} bytes")
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


def _read(path: Path) -> Any:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return orjson.loads(os.read(fd, _MAX_BYTES + 1))
    finally:
        os.close(fd)


def _write(directory: Path, name: str, body: Mapping[str, Any]) -> None:
    temporary = directory / f".{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, orjson.dumps(dict(body)))
    finally:
        os.close(fd)
    # Atomic: the reader never sees half a file.
    os.replace(temporary, directory / name)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0
