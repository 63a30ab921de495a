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

from collections.abc import Mapping
from pathlib import Path

from .token_file import read_or_create_token

__all__ = ["TOKEN_FILE", "TOKEN_VARIABLE", "internal_token"]

TOKEN_VARIABLE = "STRANGLER_INTERNAL_TOKEN"
TOKEN_FILE = "internal-token"


def internal_token(var_dir: Path, environ: Mapping[str, str]) -> tuple[str, str]:
    """The stack's internal token and where it comes from (for people):
    ``$STRANGLER_INTERNAL_TOKEN``, or the path of the token file.

    Raises :class:`~strangler_proxy.exceptions.TokenFileError` when the file
    cannot be used.
    """
    token = environ.get(TOKEN_VARIABLE, "").strip()
    if token:
        return token, f"${TOKEN_VARIABLE}"
    path = var_dir / TOKEN_FILE
    remedy = f"remove {path} to have a new token generated"
    return read_or_create_token(path, remedy=remedy).value, str(path)
