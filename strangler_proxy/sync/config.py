"""The ``sync`` configuration: which service gets which domain events.

Loaded like a plan (:func:`load_sync`): YAML into frozen pydantic models with
``extra="forbid"``; every problem is reported as ``FILE:LINE: FIELD: MESSAGE``.

.. code-block:: yaml

    version: 1
    adapter: shop            # the monolith at hand (strangler_proxy.sync.adapter)
    relay: {batch: 100, poll: 0.5s, max_attempts: 8, timeout: 5s,
            backoff: {initial: 0.5s, max: 60s}}
    subscribers:
      catalog:
        url: http://127.0.0.1:8101
        events: ["catalog.*"]
        token_env: STRANGLER_INTERNAL_TOKEN   # the default

The file names where the relay's credential comes from (``token_env``, an
environment variable), never the secret itself. With a top-level ``oidc:
{issuer, client_id_env, client_secret_env}`` (or a subscriber's own
``client_id_env``/``client_secret_env``) the relay sends a client-credentials
token of that provider instead of the shared token
(``docs/reference/zero-trust.md``). A subscriber with ``transport: jetstream``
gets its events through NATS JetStream, on the broker the top-level ``nats:
{url, stream, subject_prefix, token_env}`` names
(``docs/reference/jetstream.md``). Every field is documented in
``docs/reference/sync.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from strangler_proxy.plan import Duration
from strangler_proxy.plan.load import ISSUES, parse_document, read_document

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "Backoff",
    "Nats",
    "Ownership",
    "RelayOidc",
    "RelaySettings",
    "Subscriber",
    "SyncConfig",
    "load_sync",
    "matches",
    "parse_sync",
]

_PATTERN = re.compile(r"^(?:\*|[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*(?:\.\*)?)$")
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_NATS_URL = re.compile(r"^(?:nats|tls)://[^\s/]+/?$")
_STREAM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")

DEFAULT_TOKEN_ENV = "STRANGLER_INTERNAL_TOKEN"
"""The environment variable holding the internal token, unless a sync file
names another (``token_env``)."""


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"must name an environment variable (letters, digits, '_'), such as "
            f"{DEFAULT_TOKEN_ENV}; put the token itself in that variable, "
            "never in the sync file"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def matches(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches ``pattern``: exact, ``prefix.*`` or ``*``."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


class Backoff(_Model):
    """Exponential backoff: ``initial``, doubling per failure, capped at ``max``."""

    initial: Duration = 0.5
    max: Duration = 60.0

    @model_validator(mode="after")
    def _ordered(self) -> Backoff:
        if self.initial <= 0:
            raise ValueError("initial must be greater than zero")
        if self.max < self.initial:
            raise ValueError("max must not be less than initial")
        return self

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1, 2, ...)."""
        exponent = min(max(failures - 1, 0), 62)
        return float(min(self.max, self.initial * 2**exponent))


class RelaySettings(_Model):
    """How the relay polls and retries; the CLI's flags override some."""

    batch: int = Field(default=100, ge=1, le=10_000)
    poll: Duration = 0.5
    timeout: Duration = 5.0
    max_attempts: int = Field(default=8, ge=1)
    backoff: Backoff = Backoff()
    dependency_retry: Duration = 60.0
    """The longest an event answered ``dependency_missing`` is held back. It
    is sent again sooner, as soon as the relay has sent what else was due and
    delivered something since; the bound serves a relay that restarted (it
    forgets what it held) or never catches up."""
    dependency_wait: Duration = 600.0
    """How long an event may wait for its dependency before each
    ``dependency_missing`` is charged as a rejection."""

    @model_validator(mode="after")
    def _positive(self) -> RelaySettings:
        if self.dependency_retry <= 0:
            raise ValueError("dependency_retry must be greater than zero")
        return self


class Subscriber(_Model):
    """A service that receives events at ``url`` + ``path``."""

    url: str
    events: tuple[str, ...] = Field(min_length=1)
    path: str = "/internal/events"
    token_env: str = DEFAULT_TOKEN_ENV
    """The environment variable whose value the relay sends as ``Authorization:
    Bearer <token>``."""
    client_id_env: str | None = None
    """With ``oidc``: the variable holding the client id the relay uses for
    this subscriber (default: ``oidc.client_id_env``)."""
    client_secret_env: str | None = None
    """With ``oidc``: the variable holding that client's secret."""
    transport: Literal["http", "jetstream"] = "http"
    """How the relay delivers: ``http`` posts to ``url`` + ``path``;
    ``jetstream`` publishes to the sync file's ``nats`` broker, and ``url``
    serves backfill and reconcile only."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(
                f"must be an http(s) base URL such as http://127.0.0.1:8101, "
                f"not {value!r}"
            )
        return value.rstrip("/")

    @field_validator("events")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not _PATTERN.match(pattern):
                raise ValueError(
                    f"{pattern!r} is not an event pattern: use a type "
                    "(catalog.product.upserted), a prefix (catalog.*) or *"
                )
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/', not {value!r}")
        return value

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("client_id_env", "client_secret_env")
    @classmethod
    def _client_env(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)

    def wants(self, event_type: str) -> bool:
        """Whether this subscriber receives events of ``event_type``."""
        return any(matches(p, event_type) for p in self.events)


class Ownership(_Model):
    """Which service writes which aggregate types (the ownership flip).

    ``owners`` maps an aggregate type to the subscriber that now owns it;
    types not listed belong to the monolith. The owner's outbox is relayed to
    the monolith's ingest at ``monolith`` + ``path`` (``strangler ownership``),
    with the token in the environment variable ``token_env``.
    """

    monolith: str = "http://127.0.0.1:8000"
    path: str = "/internal/events"
    token_env: str = DEFAULT_TOKEN_ENV
    """The environment variable holding the token sent to the monolith."""
    owners: dict[str, str] = {}

    @field_validator("monolith")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return Subscriber._http_url(value)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return Subscriber._absolute(value)

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("owners")
    @classmethod
    def _aggregate_types(cls, value: dict[str, str]) -> dict[str, str]:
        for aggregate_type in value:
            if not _PATTERN.match(aggregate_type) or "*" in aggregate_type:
                raise ValueError(
                    f"{aggregate_type!r} is not an aggregate type such as "
                    "catalog.product"
                )
        return value

    def owned_by(self, service: str) -> tuple[str, ...]:
        """The aggregate types ``service`` owns, sorted."""
        return tuple(sorted(t for t, o in self.owners.items() if o == service))


class Nats(_Model):
    """The NATS JetStream broker that ``transport: jetstream`` subscribers get
    their events from: subject ``<subject_prefix>.<subscriber>`` of ``stream``
    (created when missing)."""

    url: str = "nats://127.0.0.1:4222"
    stream: str = "STRANGLER_EVENTS"
    subject_prefix: str = Field(default="strangler.events", max_length=200)
    token_env: str | None = None
    """The environment variable holding the broker's token, if it wants one."""

    @field_validator("url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        if not _NATS_URL.match(value):
            raise ValueError(
                f"must be a nats:// or tls:// URL such as nats://127.0.0.1:4222, "
                f"not {value!r}"
            )
        return value.rstrip("/")

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if not _STREAM.match(value):
            raise ValueError(
                f"{value!r} is not a stream name: letters, digits, '-' and '_' "
                "(at most 64)"
            )
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not _SUBJECT.match(value):
            raise ValueError(
                f"{value!r} is not a subject prefix: dot-separated tokens of "
                "letters, digits, '-' and '_', without wildcards"
            )
        return value

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)


class RelayOidc(_Model):
    """The relay's client of an OIDC provider (client credentials): every
    subscriber then gets a token whose audience is the subscriber's name
    (``monolith`` for the ownership relay), not the shared token."""

    issuer: str = Field(min_length=1, max_length=2000)
    token_url: str | None = None
    """Default ``<issuer>/token/`` (the bundled provider's)."""
    client_id_env: str = "STRANGLER_RELAY_CLIENT_ID"
    client_secret_env: str = "STRANGLER_RELAY_CLIENT_SECRET"

    @field_validator("issuer", "token_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s]+$", value):
            raise ValueError(f"must be an http(s) URL, not {value!r}")
        if value is None or info.field_name == "token_url":
            return value  # an endpoint is used as written (``/token/`` redirects)
        return value.rstrip("/")  # ``<issuer>/token/`` is built from it

    @field_validator("client_id_env", "client_secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _env_name(value)


class SyncConfig(_Model):
    """The whole sync file."""

    version: Literal[1] = 1
    adapter: str = Field(default="shop", min_length=1, max_length=200)
    """Which monolith the events come from: a bundled adapter's name (``shop``)
    or ``module:attribute`` (see :mod:`.adapter`)."""
    relay: RelaySettings = RelaySettings()
    subscribers: dict[str, Subscriber] = Field(min_length=1)
    ownership: Ownership = Ownership()
    oidc: RelayOidc | None = None
    """Client credentials instead of the shared token (see :class:`RelayOidc`)."""
    nats: Nats | None = None
    """The broker of ``transport: jetstream`` subscribers (see :class:`Nats`)."""

    @model_validator(mode="after")
    def _nats_for_jetstream(self, info: ValidationInfo) -> SyncConfig:
        if self.nats is not None:
            return self
        issues = [
            (
                ("subscribers", name, "transport"),
                "jetstream needs a top-level nats: {url: nats://...} (the broker "
                "to publish to)",
            )
            for name, sub in self.subscribers.items()
            if sub.transport == "jetstream"
        ]
        sink = (info.context or {}).get(ISSUES)
        if sink is not None:
            sink.extend(issues)
        elif issues:
            raise ValueError(f"subscribers.{issues[0][0][1]}.transport: {issues[0][1]}")
        return self

    @model_validator(mode="after")
    def _oidc_for_clients(self) -> SyncConfig:
        if self.oidc is None:
            for name, sub in self.subscribers.items():
                if sub.client_id_env or sub.client_secret_env:
                    raise ValueError(
                        f"subscribers.{name}: client_id_env/client_secret_env need "
                        "a top-level oidc: {issuer: ...} (the provider to ask)"
                    )
        return self

    @model_validator(mode="after")
    def _owners_are_subscribers(self) -> SyncConfig:
        for aggregate_type, owner in self.ownership.owners.items():
            if owner != "monolith" and owner not in self.subscribers:
                known = ", ".join(sorted(self.subscribers))
                raise ValueError(
                    f"ownership: {aggregate_type} owner {owner!r} is not a "
                    f"subscriber (known: {known}) nor 'monolith'"
                )
        return self

    @field_validator("subscribers")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(
                    f"subscriber name {name!r} must be lower-case letters, digits, "
                    "'-' or '_'"
                )
        return value

    def subscriber(self, name: str) -> Subscriber:
        """The subscriber called ``name``; :class:`KeyError` names the known ones."""
        try:
            return self.subscribers[name]
        except KeyError:
            known = ", ".join(sorted(self.subscribers))
            raise KeyError(f"no subscriber {name!r} (known: {known})") from None


def load_sync(path: str | Path) -> SyncConfig:
    """Read and validate the sync file; raise :class:`PlanError` if invalid.

    A file over 1 MiB is refused without being read further (as a plan).
    """
    path = Path(path)
    return parse_sync(read_document(path, "sync file"), str(path))


def parse_sync(text: str, filename: str) -> SyncConfig:
    """Validate sync YAML ``text``; errors name ``filename``, line and field."""
    return parse_document(text, filename, SyncConfig)
