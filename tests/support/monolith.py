"""The bundled monolith as a real process: a seeded database and a uvicorn server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from tests.support.internal import with_internal_token
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

__all__ = ["manage", "monolith_server", "seed_database"]


def manage(env: Mapping[str, str], *args: str) -> None:
    """``python manage.py ARGS`` in a child process; fails the test on error."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"manage.py {args}:\n{result.stdout}{result.stderr}"


def seed_database(env: Mapping[str, str]) -> None:
    """Migrate the database ``env`` names and fill it with the small demo shop."""
    manage(env, "migrate", "--noinput")
    manage(env, "seed_shop", "--small")


def monolith_server(
    env: Mapping[str, str],
    *,
    ready_path: str = "/health",
    extra: Sequence[str] = (),
) -> tuple[ServerProcess, str]:
    """The monolith served as documented (``uvicorn legacy_monolith.asgi``), not
    yet started, and its base URL. Its internal token is the suite's
    (:mod:`tests.support.internal`) unless ``env`` names one."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "legacy_monolith.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
        ],
        ready_url=base + ready_path,
        env={**with_internal_token({}), **env},
    )
    return server, base
