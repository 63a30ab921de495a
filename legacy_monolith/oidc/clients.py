"""Clients and scopes declared in YAML, written into DOT's tables.

The file has two mappings, ``scopes`` and ``clients`` (see
``legacy_monolith/oidc_clients.yaml`` and docs/reference/oidc-provider.md).
Applying it is idempotent: clients and scopes are created or updated by name;
``prune`` deletes those the file no longer declares. A confidential client's
secret is read from ``<secrets dir>/<client>.secret``, generated (mode 0600)
when absent: the database only holds its hash.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction
from oauth2_provider.models import Application

from .models import ClientPolicy, Scope

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_GRANTS = {
    "authorization-code": Application.GRANT_AUTHORIZATION_CODE,
    "client-credentials": Application.GRANT_CLIENT_CREDENTIALS,
}
_TYPES = {
    "public": Application.CLIENT_PUBLIC,
    "confidential": Application.CLIENT_CONFIDENTIAL,
}
_SCOPE_KEYS = {"description", "audience"}
_CLIENT_KEYS = {
    "name",
    "type",
    "grant",
    "redirect_uris",
    "scopes",
    "default_scopes",
    "audience",
    "skip_consent",
}


class ClientsFileError(ValueError):
    """The clients file is invalid; the message names the entry."""


@dataclass
class Applied:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    secrets_written: list[Path] = field(default_factory=list)


def _strings(where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClientsFileError(f"{where}: must be a list of strings")
    return list(value)


def _mapping(where: str, value: Any, allowed: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClientsFileError(f"{where}: must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise ClientsFileError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {known})"
        )
    return value


def load(path: Path) -> dict[str, Any]:
    """The validated file: ``{"scopes": {...}, "clients": {...}}``."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    top = _mapping(str(path), document, {"scopes", "clients"})
    scopes = _mapping(
        f"{path}: scopes", top.get("scopes"), set(top.get("scopes") or {})
    )
    clients = _mapping(
        f"{path}: clients", top.get("clients"), set(top.get("clients") or {})
    )
    out: dict[str, Any] = {"scopes": {}, "clients": {}}
    for name, spec in scopes.items():
        where = f"{path}: scopes.{name}"
        if not _NAME.match(str(name)):
            raise ClientsFileError(f"{where}: not a valid scope name")
        spec = _mapping(where, spec, _SCOPE_KEYS)
        out["scopes"][name] = {
            "description": str(spec.get("description", "")),
            "audience": _strings(f"{where}.audience", spec.get("audience")),
        }
    for name, spec in clients.items():
        where = f"{path}: clients.{name}"
        if not _NAME.match(str(name)):
            raise ClientsFileError(f"{where}: not a valid client id")
        spec = _mapping(where, spec, _CLIENT_KEYS)
        kind, grant = spec.get("type"), spec.get("grant")
        if kind not in _TYPES:
            raise ClientsFileError(f"{where}.type: must be public or confidential")
        if grant not in _GRANTS:
            raise ClientsFileError(
                f"{where}.grant: must be authorization-code or client-credentials"
            )
        if kind == "public" and grant != "authorization-code":
            raise ClientsFileError(f"{where}: a public client cannot hold credentials")
        redirects = _strings(f"{where}.redirect_uris", spec.get("redirect_uris"))
        if grant == "authorization-code" and not redirects:
            raise ClientsFileError(f"{where}.redirect_uris: required for this grant")
        wanted = _strings(f"{where}.scopes", spec.get("scopes"))
        default = _strings(f"{where}.default_scopes", spec.get("default_scopes"))
        for scope in [*wanted, *default]:
            if scope not in out["scopes"]:
                raise ClientsFileError(f"{where}: scope {scope!r} is not declared")
        if not set(default) <= set(wanted):
            raise ClientsFileError(f"{where}.default_scopes: must be among scopes")
        out["clients"][name] = {
            "name": str(spec.get("name", name)),
            "type": kind,
            "grant": grant,
            "redirect_uris": redirects,
            "scopes": wanted,
            "default_scopes": default,
            "audience": _strings(f"{where}.audience", spec.get("audience")),
            "skip_consent": bool(spec.get("skip_consent", False)),
        }
    return out


def _secret(directory: Path, client_id: str, applied: Applied) -> str:
    path = directory / f"{client_id}.secret"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value + "\n")
    applied.secrets_written.append(path)
    return value


@transaction.atomic
def apply(config: dict[str, Any], secrets_dir: Path, *, prune: bool = False) -> Applied:
    """Create or update the scopes and clients of ``config`` (from :func:`load`)."""
    applied = Applied()
    for name, spec in config["scopes"].items():
        Scope.objects.update_or_create(name=name, defaults=spec)
    for client_id, spec in config["clients"].items():
        app = Application.objects.filter(client_id=client_id).first()
        if app is None:
            app = Application(client_id=client_id)
            applied.created.append(client_id)
        else:
            applied.updated.append(client_id)
        app.name = spec["name"]
        app.client_type = _TYPES[spec["type"]]
        app.authorization_grant_type = _GRANTS[spec["grant"]]
        app.redirect_uris = " ".join(spec["redirect_uris"])
        app.skip_authorization = spec["skip_consent"]
        app.algorithm = Application.RS256_ALGORITHM
        app.client_secret = (
            _secret(secrets_dir, client_id, applied)
            if spec["type"] == "confidential"
            else ""
        )
        app.save()
        ClientPolicy.objects.update_or_create(
            application=app,
            defaults={
                "scopes": spec["scopes"],
                "default_scopes": spec["default_scopes"],
                "audience": spec["audience"],
            },
        )
    if prune:
        stale = Application.objects.exclude(client_id__in=list(config["clients"]))
        applied.deleted.extend(stale.values_list("client_id", flat=True))
        stale.delete()
        Scope.objects.exclude(name__in=list(config["scopes"])).delete()
    return applied
