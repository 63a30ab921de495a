"""Settings of one ``strangler proxy`` process.

One :class:`ProxySettings` object holds everything the process needs. Each field
can come from a command-line flag, from an environment variable named
``STRANGLER_<FIELD>`` (``STRANGLER_PORT``, ``STRANGLER_ADMIN_TOKEN``...) or from
its default, in that order of precedence (uvicorn's ``Config`` and click CLI do
the same). The flags of ``strangler proxy`` mirror the fields one to one.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from strangler_proxy.exceptions import SettingsError

__all__ = ["ENV_PREFIX", "ProxySettings", "is_loopback"]

ENV_PREFIX = "STRANGLER_"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ProxySettings(BaseModel):
    """The settings of one proxy process (not of the plan, which is reloadable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan: Path = Field(description="The plan file (YAML).")
    host: str = Field("127.0.0.1", description="Interface the proxy listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port of the proxy.")
    admin_host: str = Field("127.0.0.1", description="Interface of the admin API.")
    admin_port: int = Field(8081, ge=0, le=65535, description="Port of the admin API.")
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token of the admin API. Generated at start when unset.",
    )
    admin_token_file: Path = Field(
        Path("var/admin-token"),
        description="Where a generated admin token is written (mode 0600).",
    )
    metrics_auth: bool = Field(
        True, description="Require the admin token on GET /metrics."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    access_log: bool = Field(True, description="One JSON line per request.")
    access_log_query: bool = Field(
        False, description="Include the (redacted) query string in the access log."
    )
    watch: bool = Field(True, description="Reload the plan when its file changes.")
    reload_interval: float = Field(
        1.0, gt=0, description="Seconds between two checks of the plan file."
    )
    shutdown_timeout: float = Field(
        30.0, ge=0, description="Seconds in-flight requests get to finish on exit."
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client gets to send a request's headers (a new "
        "connection: its first request's); then 408 and the connection closes.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes sharing the listening sockets and the "
        "control store (see docs/reference/replicas.md).",
    )

    # Not a field: which settings the operator set explicitly (flag or env).
    explicit: frozenset[str] = Field(frozenset(), exclude=True, repr=False)

    @model_validator(mode="after")
    def _admin_exposure(self) -> ProxySettings:
        if self.admin_token is not None and not self.admin_token.get_secret_value():
            raise ValueError("admin_token is empty")
        # A non-loopback admin API is a remote control of the traffic: only
        # when asked for explicitly, and never with a token nobody chose.
        if not is_loopback(self.admin_host):
            if "admin_host" not in self.explicit:
                raise ValueError(
                    f"admin_host {self.admin_host!r} is not a loopback address"
                )
            if self.admin_token is None:
                raise ValueError(
                    f"admin_host {self.admin_host!r} is not a loopback address: "
                    "set an admin token (--admin-token or STRANGLER_ADMIN_TOKEN) "
                    "to expose the admin API"
                )
        return self

    @property
    def admin_exposed(self) -> bool:
        """True when the admin API listens on a non-loopback interface."""
        return not is_loopback(self.admin_host)

    @classmethod
    def env_name(cls, field: str) -> str:
        """The variable of a field: ``admin_port`` -> ``STRANGLER_ADMIN_PORT``."""
        return ENV_PREFIX + field.upper()

    @classmethod
    def load(
        cls,
        flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ProxySettings:
        """Merge flags (``None`` = not given) over ``STRANGLER_*`` env over defaults.

        Raises :class:`SettingsError` naming each bad field and where it came from.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        issues: list[str] = []
        for name, info in cls.model_fields.items():
            if name == "explicit":
                continue
            flag_value = (flags or {}).get(name)
            if flag_value is not None:
                values[name] = flag_value
                origin[name] = f"--{name.replace('_', '-')}"
                continue
            env_name = cls.env_name(name)
            raw = env.get(env_name)
            if raw is None:
                continue
            origin[name] = env_name
            if info.annotation is bool:
                lowered = raw.strip().lower()
                if lowered in _TRUE:
                    values[name] = True
                elif lowered in _FALSE:
                    values[name] = False
                else:
                    issues.append(f"{env_name}: not a boolean: {raw!r}")
            else:
                values[name] = raw
        unknown = set(flags or {}) - set(cls.model_fields)
        if unknown:
            issues.append(f"unknown settings: {', '.join(sorted(unknown))}")
        if issues:
            raise SettingsError(issues)
        try:
            return cls(**values, explicit=frozenset(origin))
        except ValidationError as exc:
            raise SettingsError(_describe(exc, origin)) from None


def _describe(exc: ValidationError, origin: Mapping[str, str]) -> list[str]:
    issues = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        where = origin.get(field, field or "settings")
        if error["type"] == "missing":
            flag = "--" + field.replace("_", "-")
            issues.append(f"{flag} (or {ENV_PREFIX}{field.upper()}) is required")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            issues.append(f"{where}: {message}")
    return issues
