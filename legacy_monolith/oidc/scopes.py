"""DOT's scopes backend: the scopes of ``oidc_clients.yaml``, from the database.

A client may be granted only the scopes its policy lists; asking for no scope
gives its ``default_scopes``.
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import BaseScopes

from .models import ClientPolicy, Scope


def _policy(application: Any) -> ClientPolicy | None:
    if application is None:
        return None
    return ClientPolicy.objects.filter(application=application).first()


class DatabaseScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        return {s.name: s.description for s in Scope.objects.order_by("name")}

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        policy = _policy(application)
        if policy is None:
            return list(self.get_all_scopes()) if application is None else []
        return list(policy.scopes)

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        policy = _policy(application)
        return list(policy.default_scopes) if policy is not None else []
