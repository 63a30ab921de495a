"""The stack that ``strangler up`` runs: monolith, services, relays, proxy.

:func:`build_stack` turns a :class:`StackConfig` (the :class:`StackApp` to run,
ports, database URL, state directory, plan) into the
:class:`~strangler_proxy.devstack.supervisor.ProcessSpec` list the supervisor
runs. What the monolith and the services *are* comes from the
:class:`StackApp` (the bundled shop's is
:data:`strangler_proxy.adapters.shop.SHOP`); this module knows no particular
application:

* ``monolith``: the Django monolith under uvicorn. Before its first start it is
  migrated and seeded (``seed_shop --if-empty``). Its database is
  ``--database-url``, else ``$DATABASE_URL``, else SQLite in the state directory.
* one process per service of the app whose code exists
  (they are written one at a time; a missing one is skipped with a message).
  Each keeps its own database: ``$<SERVICE>_DATABASE_URL``, else SQLite in the
  state directory.
* ``relay`` (only with a sync file): ``strangler relay``, which delivers the
  monolith's outbox events to the services.
* ``owner-relay-<service>`` (only with a sync file whose ``ownership.owners``
  names a service the stack runs): ``strangler ownership relay SERVICE``,
  which delivers that service's outbox to the monolith, with the service's
  database URL exactly as the service gets it.
* ``proxy``: ``strangler proxy`` with the plan, started last, once everything
  it forwards to is ready.

Internal calls (``/internal/...``) run in zero trust (:mod:`.zero_trust`)
when the app's monolith is an OIDC provider (:attr:`StackApp.oidc`): each
service, the relays, the saga and the gate's probes (in the proxy) prove who
they are with their own client's tokens, and no process gets a shared token.
With ``zero_trust=False`` (or no provider), the monolith, every service and
every relay get one internal token in ``STRANGLER_INTERNAL_TOKEN``
(:mod:`.internal_token`) instead.

The plans in ``migration_plans/`` name the upstreams on their default ports.
When a port is changed, the proxy gets a copy of the plan, in the state
directory, with the URLs of the stack's upstreams rewritten to match (and the
relays a copy of the sync file with its subscribers' URLs and
``ownership.monolith`` rewritten).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .internal_token import TOKEN_VARIABLE, internal_token
from .supervisor import ProcessSpec
from .zero_trust import OidcProvider, ZeroTrust, zero_trust

__all__ = [
    "PINNED",
    "ServiceDef",
    "Stack",
    "StackApp",
    "StackConfig",
    "build_stack",
    "render_plan",
]

# Runs the CLI of the interpreter running `up`, whether or not the `strangler`
# script is on PATH.
_CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"
# Where a sync file's ``ownership.monolith`` points when it is left out.
_DEFAULT_MONOLITH = "http://127.0.0.1:8000"
PINNED = frozenset({"monolith", "proxy"})
"""The processes a running stack never stops or restarts to apply a change:
clients reach the monolith through the proxy."""


@dataclass(frozen=True)
class ServiceDef:
    """A service the stack runs when its code exists."""

    name: str
    port: int
    module: str
    """The module whose ``create_app()`` builds the service's ASGI app."""
    source: str
    """Its file, relative to the project root: skipped while it is missing."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Environment variables that tell it where others are: variable -> the
    name of another service, ``monolith`` or ``proxy`` (given as a base URL
    with the ports this ``up`` chose)."""

    def exists(self, root: Path) -> bool:
        """True when the service's code is there."""
        return (root / self.source).is_file()

    @property
    def database_variable(self) -> str:
        return f"{self.name.upper()}_DATABASE_URL"


@dataclass(frozen=True)
class StackApp:
    """The application ``strangler up`` runs: a Django monolith and services."""

    root: Path
    """The project root: the processes' working directory."""
    monolith_app: str
    """``module:attribute`` of the monolith's ASGI application."""
    settings_module: str
    """Its ``DJANGO_SETTINGS_MODULE``."""
    services: tuple[ServiceDef, ...] = ()
    oidc: OidcProvider | None = None
    """The monolith's OIDC provider, which makes zero trust possible."""


@dataclass(frozen=True)
class StackConfig:
    """Everything ``strangler up`` can change about the stack."""

    plan: Path
    app: StackApp
    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int = 8081
    monolith_port: int = 8000
    service_ports: Mapping[str, int] = field(default_factory=dict)
    database_url: str | None = None
    sync: Path | None = None
    var_dir: Path = Path("var")
    services: bool = True
    root: Path | None = None
    """Where the services' code is looked for (default: the app's root)."""
    python: str = sys.executable
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    admin_token: str | None = None
    """Given to the proxy as ``$STRANGLER_ADMIN_TOKEN`` (else it makes one)."""
    proxy_plan: Path | None = None
    """The plan file a running proxy already uses: taken as it is, never
    rewritten (reconciling a running stack must not reload the proxy's plan)."""

    sidecars: bool = False
    """Run each service behind its own ``strangler sidecar``; everything that
    calls a service (the proxy, the relays, other services) calls the sidecar."""
    zero_trust: bool = True
    """Internal calls with each process's own OIDC client (when the app has a
    provider); False: one shared internal token for everybody."""

    def service_port(self, service: ServiceDef) -> int:
        return self.service_ports.get(service.name, service.port)

    def sidecar_port(self, service: ServiceDef) -> int:
        """The sidecar's port: the service's plus 1000 (8101 -> 9101)."""
        return self.service_port(service) + 1000


@dataclass(frozen=True)
class Stack:
    """The processes to run, what was left out, and where things will be."""

    specs: list[ProcessSpec]
    plan: Path
    skipped: list[str]
    urls: dict[str, str]
    admin_token_source: str
    sync: Path | None = None
    internal_token_source: str = ""
    """Where the internal token every process gets comes from: the variable
    or ``<var-dir>/internal-token`` (:mod:`.internal_token`); empty under
    zero trust."""
    zero_trust: ZeroTrust | None = None
    """The provider and its clients, when the stack runs in zero trust."""


def _sidecar_trust(
    trust: ZeroTrust | None, service: ServiceDef, root: Path, env: Mapping[str, str]
) -> list[str]:
    """A sidecar's zero-trust options: the provider's tokens are verified on
    internal paths, and the service's policy (``<SERVICE>_POLICY``, else the
    ``policy.yaml`` beside its code) enforced before the service sees a call."""
    if trust is None:
        return []
    options = [
        "--oidc-issuer",
        trust.issuer,
        "--jwks-url",
        trust.verifier_env["STRANGLER_OIDC_JWKS_URL"],
    ]
    policy = env.get(f"{service.name.upper()}_POLICY") or str(
        (root / service.source).parent / "policy.yaml"
    )
    if Path(policy).is_file():
        options += ["--policy", policy]
    return options


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _client_host(host: str) -> str:
    # A wildcard bind address is not one a client can connect to.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def render_plan(
    plan: Path,
    upstream_urls: Mapping[str, str],
    out: Path,
    *,
    section: str = "upstreams",
    defaults: Mapping[str, Any] | None = None,
) -> Path:
    """The plan to give the proxy: ``plan`` itself, or a copy with fixed URLs.

    Each entry of ``section`` named in ``upstream_urls`` that the file
    declares with another URL gets that URL; when none differs the file is
    used as it is (so the proxy watches the user's file). The same works for
    a sync file's ``subscribers``. ``defaults`` are top-level keys the copy
    gets when the file has none (a sync file's ``oidc``). Raises
    ``ValueError`` when the file is not a YAML mapping.
    """
    data: Any = yaml.safe_load(plan.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{plan}: not a YAML mapping")
    upstreams = data.get(section)
    changed = False
    if isinstance(upstreams, dict):
        for name, url in upstream_urls.items():
            upstream = upstreams.get(name)
            if isinstance(upstream, dict) and upstream.get("url") != url:
                upstream["url"] = url
                changed = True
            elif isinstance(upstream, str) and upstream != url:
                upstreams[name] = url
                changed = True
    if section == "subscribers":
        # A sync file also names the monolith, for the owners' relays.
        ownership = data.get("ownership")
        monolith = upstream_urls.get("monolith")
        if isinstance(ownership, dict) and monolith is not None:
            if ownership.get("monolith", _DEFAULT_MONOLITH) != monolith:
                ownership["monolith"] = monolith
                changed = True
    for key, value in (defaults or {}).items():
        if key not in data:
            data[key] = value
            changed = True
    if not changed:
        return plan
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Generated by `strangler up` from {plan} with the stack's ports.\n"
        "# Edit the original; this copy is rewritten at every start.\n"
    )
    text = header + yaml.safe_dump(data, sort_keys=False)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")
    return out


def _fingerprint(path: Path) -> str:
    """A digest of a config file a process reads at start."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _owners(sync: Path) -> list[str]:
    """The services that own an aggregate type in the sync file, in order."""
    data: Any = yaml.safe_load(sync.read_text(encoding="utf-8"))
    ownership = data.get("ownership") if isinstance(data, dict) else None
    owners = ownership.get("owners") if isinstance(ownership, dict) else None
    if not isinstance(owners, dict):
        return []
    return sorted({str(owner) for owner in owners.values()})


def build_stack(config: StackConfig) -> Stack:
    """The process specs of the stack described by ``config``."""
    var_dir = config.var_dir.resolve()
    root = config.root or config.app.root
    env = config.environ
    keys_dir = env.get("STRANGLER_KEYS_DIR") or str(var_dir / "keys")
    python = config.python
    monolith_url = _url("127.0.0.1", config.monolith_port)
    trust: ZeroTrust | None = None
    if config.zero_trust and config.app.oidc is not None:
        trust = zero_trust(config.app.oidc, config.app.root, var_dir, monolith_url, env)
        # Blank, not left out: nobody inherits a shared token from `up`.
        internal_secret, internal_token_source = "", ""
        relay_env = trust.relay_env()
    else:
        # One internal token for the whole stack: its /internal/ endpoints
        # require it and its relays send it.
        internal_secret, internal_token_source = internal_token(var_dir, env)
        relay_env = {}
    database_url = (
        config.database_url
        or env.get("DATABASE_URL")
        or _sqlite(var_dir / "monolith.sqlite3")
    )
    monolith_env = {
        TOKEN_VARIABLE: internal_secret,
        "DJANGO_SETTINGS_MODULE": config.app.settings_module,
        "DATABASE_URL": database_url,
        "MONOLITH_STATIC_ROOT": env.get("MONOLITH_STATIC_ROOT")
        or str(var_dir / "static"),
        **(trust.monolith_env() if trust is not None else {}),
    }
    specs = [
        ProcessSpec(
            name="monolith",
            argv=[
                python,
                "-m",
                "uvicorn",
                config.app.monolith_app,
                "--host",
                "127.0.0.1",
                "--port",
                str(config.monolith_port),
                # The proxy logs every request that goes through it.
                "--no-access-log",
            ],
            env=monolith_env,
            cwd=root,
            ready_url=f"{monolith_url}/ready",
            prepare=[
                [python, "-m", "django", "migrate", "--noinput"],
                [python, "-m", "django", "seed_shop", "--if-empty"],
            ],
            ready_timeout=60.0,
        )
    ]
    skipped: list[str] = []
    upstream_urls = {"monolith": monolith_url}
    service_envs: dict[str, dict[str, str]] = {}
    urls = {"monolith": monolith_url + "/"}
    for service in config.app.services:
        if not config.services:
            break
        if not service.exists(root):
            skipped.append(f"{service.name}: {service.source} does not exist yet")
            continue
        port = config.service_port(service)
        service_url = _url("127.0.0.1", port)
        service_db = env.get(service.database_variable) or _sqlite(
            var_dir / f"{service.name}.sqlite3"
        )
        service_envs[service.name] = {
            TOKEN_VARIABLE: internal_secret,
            service.database_variable: service_db,
            "STRANGLER_KEYS_DIR": keys_dir,
            **{
                variable: _link_url(config, target)
                for variable, target in service.links.items()
            },
            **(trust.service_env(service.name) if trust is not None else {}),
        }
        specs.append(
            ProcessSpec(
                name=service.name,
                argv=[
                    python,
                    "-m",
                    "uvicorn",
                    "--factory",
                    f"{service.module}:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                env=service_envs[service.name],
                cwd=root,
                ready_url=f"{service_url}/ready",
                ready_timeout=60.0,
            )
        )
        if config.sidecars:
            sidecar_url = _url("127.0.0.1", config.sidecar_port(service))
            specs.append(
                ProcessSpec(
                    name=f"{service.name}-sidecar",
                    argv=[
                        python,
                        "-c",
                        _CLI,
                        "sidecar",
                        "--service",
                        service.name,
                        "--upstream",
                        service_url,
                        "--listen",
                        f"127.0.0.1:{config.sidecar_port(service)}",
                        "--admin-port",
                        "0",
                        "--var-dir",
                        str(var_dir),
                        *_sidecar_trust(trust, service, root, env),
                    ],
                    env={"STRANGLER_KEYS_DIR": keys_dir},
                    cwd=root,
                    ready_url=f"{sidecar_url}/_strangler/readyz",
                    depends_on=[service.name],
                    ready_timeout=60.0,
                )
            )
            service_url = sidecar_url
        upstream_urls[service.name] = service_url
        urls[service.name] = service_url + "/"

    sync_status = env.get("STRANGLER_SYNC_STATUS") or str(var_dir / "sync-status.json")
    sync: Path | None = None
    if config.sync is not None:
        sync = render_plan(
            config.sync,
            upstream_urls,
            var_dir / "up-sync.yaml",
            section="subscribers",
            defaults={"oidc": trust.sync_block()} if trust is not None else None,
        )
        specs.append(
            ProcessSpec(
                name="relay",
                argv=[python, "-c", _CLI, "relay", "--sync", str(sync)],
                # The relay reads the monolith's outbox through Django, and
                # writes its counters where the dashboard reads them.
                env={
                    **monolith_env,
                    **relay_env,
                    "STRANGLER_SYNC_STATUS": sync_status,
                },
                cwd=root,
                depends_on=[spec.name for spec in specs],
                fingerprint=_fingerprint(sync),
            )
        )
        for owner in _owners(sync):
            if owner not in service_envs:
                continue  # a service the stack does not run relays itself
            specs.append(
                ProcessSpec(
                    name=f"owner-relay-{owner}",
                    argv=[python, "-c", _CLI, "ownership", "relay", owner]
                    + ["--sync", str(sync)],
                    # It reads the service's outbox, in the service's database.
                    env={**service_envs[owner], **relay_env},
                    cwd=root,
                    depends_on=["monolith", owner],
                    fingerprint=_fingerprint(sync),
                )
            )
    relays = {
        spec.name
        for spec in specs
        if spec.name == "relay" or spec.name.startswith("owner-relay-")
    }

    plan = config.proxy_plan or render_plan(
        config.plan, upstream_urls, var_dir / "up-plan.yaml"
    )
    token_file = var_dir / "admin-token"
    proxy_host = _client_host(config.host)
    proxy_url = _url(proxy_host, config.port)
    admin_url = _url("127.0.0.1", config.admin_port)
    specs.append(
        ProcessSpec(
            name="proxy",
            argv=[
                python,
                "-c",
                _CLI,
                "proxy",
                "--plan",
                str(plan),
                "--host",
                config.host,
                "--port",
                str(config.port),
                "--admin-host",
                "127.0.0.1",
                "--admin-port",
                str(config.admin_port),
                "--admin-token-file",
                str(token_file),
                # Always JSON: the supervisor renders it, or passes it through.
                "--log-format",
                "json",
            ],
            # State lives under --var-dir, whatever the working directory.
            env={
                "STRANGLER_PARITY_STORE": env.get("STRANGLER_PARITY_STORE")
                or str(var_dir / "parity.sqlite3"),
                "STRANGLER_CONTROL_STORE": env.get("STRANGLER_CONTROL_STORE")
                or str(var_dir / "control.sqlite3"),
                "STRANGLER_KEYS_DIR": keys_dir,
                "STRANGLER_SYNC_STATUS": sync_status,
                # The gate's client, for its invariant probes.
                **(trust.proxy_env() if trust is not None else {}),
                **(
                    {"STRANGLER_ADMIN_TOKEN": config.admin_token}
                    if config.admin_token
                    else {}
                ),
            },
            cwd=root,
            ready_url=f"{proxy_url}/_strangler/readyz",
            depends_on=[spec.name for spec in specs if spec.name not in relays],
            ready_timeout=30.0,
        )
    )
    urls.update(
        {
            "shop": proxy_url + "/",
            "api": proxy_url + "/api/products/",
            "admin": admin_url + "/admin/plan",
            "metrics": admin_url + "/metrics",
            "dashboard": admin_url + "/dashboard/",
            "readyz": proxy_url + "/_strangler/readyz",
        }
    )
    if env.get("STRANGLER_ADMIN_TOKEN"):
        token_source = "$STRANGLER_ADMIN_TOKEN"
    else:
        token_source = str(token_file)
    return Stack(
        specs=specs,
        plan=plan,
        skipped=skipped,
        urls=urls,
        admin_token_source=token_source,
        sync=sync,
        internal_token_source=internal_token_source,
        zero_trust=trust,
    )


def _link_url(config: StackConfig, target: str) -> str:
    """The base URL of ``target`` (a service, ``monolith`` or ``proxy``)."""
    if target == "proxy":
        return _url(_client_host(config.host), config.port)
    if target == "monolith":
        return _url("127.0.0.1", config.monolith_port)
    for service in config.app.services:
        if service.name == target:
            port = config.sidecar_port(service) if config.sidecars else None
            return _url("127.0.0.1", port or config.service_port(service))
    raise ValueError(f"a service links to {target!r}, which the stack does not run")
