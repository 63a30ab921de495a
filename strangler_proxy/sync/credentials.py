"""The credential a relay sends to an internal endpoint (``/internal/events``).

Today a shared secret: ``Authorization: Bearer <token>``, the token read from
the environment variable the sync file names (``token_env``, by default
``STRANGLER_INTERNAL_TOKEN``). Every relay request goes through
:func:`internal_credential`, so moving to OIDC client credentials changes this
one function. The token is never logged, and never stored in a sync file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from strangler_proxy.exceptions import CredentialError

__all__ = ["internal_credential"]


def internal_credential(
    subscriber: str, token_env: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The headers that authenticate a relay to ``subscriber``'s internal
    endpoint; :class:`CredentialError` naming the variable when it is unset."""
    env = os.environ if environ is None else environ
    token = env.get(token_env, "").strip()
    if not token:
        raise CredentialError(
            f"{subscriber}: the environment variable {token_env} is not set; the "
            f"relay sends its value as the internal token (Authorization: Bearer) "
            f"and {subscriber} refuses calls without it"
        )
    return {"Authorization": f"Bearer {token}"}
