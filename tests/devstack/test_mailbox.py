"""The mailbox between ``strangler sync`` and a running ``up``: real files.

The receiving side runs on a thread of the test, as ``up`` runs it on its
supervising thread; the requests and answers are real files with real modes.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from strangler_proxy.devstack.mailbox import Mailbox, send
from strangler_proxy.exceptions import StackRequestError
from tests.support.polling import wait_until


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(tmp_path / "up-requests")
    box.open()
    yield box
    box.close()


def test_a_request_gets_its_answer_and_leaves_nothing(mailbox: Mailbox) -> None:
    taken: list[object] = []

    def run() -> None:
        def take() -> bool:
            request = mailbox.take()
            if request is not None:
                taken.append(request)
                mailbox.answer(request.id, {"ok": True, "asked": dict(request.body)})
            return bool(taken)

        wait_until(take, "a request arrived")

    thread = threading.Thread(target=run)
    thread.start()
    answer = send(
        mailbox.directory,
        {"action": "sync", "sync": None},
        timeout=15,
        alive=lambda: True,
    )
    thread.join(timeout=15)
    assert answer == {"ok": True, "asked": {"action": "sync", "sync": None}}
    assert list(mailbox.directory.iterdir()) == []
    assert stat.S_IMODE(mailbox.directory.stat().st_mode) == 0o700


def test_the_request_file_is_the_users_alone(mailbox: Mailbox) -> None:
    seen: list[int] = []

    def run() -> None:
        def arrived() -> bool:
            for path in mailbox.directory.glob("*.request.json"):
                seen.append(stat.S_IMODE(path.stat().st_mode))
                request = mailbox.take()
                assert request is not None
                mailbox.answer(request.id, {"ok": True})
                return True
            return False

        wait_until(arrived, "a request arrived")

    thread = threading.Thread(target=run)
    thread.start()
    send(mailbox.directory, {"action": "x"}, timeout=15, alive=lambda: True)
    thread.join(timeout=15)
    assert seen == [0o600]


def test_a_request_others_could_write_is_refused_and_answered(
    mailbox: Mailbox,
) -> None:
    request_id = "0123456789abcdef0123456789abcdef"
    path = mailbox.directory / f"{request_id}.request.json"
    path.write_bytes(orjson.dumps({"action": "sync", "sync": None}))
    os.chmod(path, 0o622)
    assert mailbox.take() is None
    assert not path.exists()
    assert mailbox.refused == [
        f"request {path.name} refused: mode 0622: group or others may use it"
    ]
    answer = orjson.loads(
        (mailbox.directory / f"{request_id}.response.json").read_bytes()
    )
    assert answer["ok"] is False
    assert "group or others" in answer["error"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"[1, 2]", "not a json object"), (b"{nope", "unexpected character")],
)
def test_a_malformed_request_is_refused(
    mailbox: Mailbox, content: bytes, reason: str
) -> None:
    path = mailbox.directory / ("a" * 32 + ".request.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    assert mailbox.take() is None
    assert reason in mailbox.refused[-1].lower()
    assert not path.exists()


def test_a_symlinked_request_is_refused(mailbox: Mailbox, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(b"{}")
    os.chmod(target, 0o600)
    (mailbox.directory / ("b" * 32 + ".request.json")).symlink_to(target)
    assert mailbox.take() is None
    assert mailbox.refused
    assert target.exists()


def test_no_mailbox_means_no_up(tmp_path: Path) -> None:
    with pytest.raises(StackRequestError, match="no `strangler up` takes requests"):
        send(tmp_path / "up-requests", {}, timeout=1, alive=lambda: True)


def test_a_mailbox_open_to_others_is_not_used(tmp_path: Path) -> None:
    directory = tmp_path / "up-requests"
    directory.mkdir()
    os.chmod(directory, 0o733)
    with pytest.raises(StackRequestError, match="open to group or others"):
        send(directory, {}, timeout=1, alive=lambda: True)
    assert list(directory.iterdir()) == []


def test_up_stopping_before_it_answers_is_an_error(mailbox: Mailbox) -> None:
    with pytest.raises(StackRequestError, match="stopped before it answered"):
        send(mailbox.directory, {"action": "x"}, timeout=15, alive=lambda: False)
    assert list(mailbox.directory.iterdir()) == []


def test_an_unanswered_request_is_withdrawn(mailbox: Mailbox) -> None:
    with pytest.raises(StackRequestError, match="did not answer within 1s$"):
        send(mailbox.directory, {"action": "x"}, timeout=1, alive=lambda: True)
    assert list(mailbox.directory.iterdir()) == []
    assert mailbox.take() is None


def test_opening_drops_what_a_previous_up_left(tmp_path: Path) -> None:
    directory = tmp_path / "up-requests"
    directory.mkdir(mode=0o755)
    (directory / ("c" * 32 + ".request.json")).write_bytes(b"{}")
    box = Mailbox(directory)
    box.open()
    assert list(directory.iterdir()) == []
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    box.close()
    assert not directory.exists()
