"""``strangler sidecar``: the data plane in front of one service.

The same proxy as at the edge, with a generated one-route plan: every request
goes to the service, with the edge's limits, timeouts, bulkhead and breaker,
access log, metrics and spans, and (with ``--oidc-issuer``) bearer tokens
verified before they reach the service, for the service's own audience. Its
callers (the edge proxy, other services, the relays) call the sidecar instead
of the service; internal endpoints pass only with a bearer credential.

With ``--policy FILE`` (the services' zero-trust policy format,
:mod:`strangler_proxy.proxy.policy`) every internal request must also carry a
service credential the policy allows for its method and path, else 403 here:
the service gets only the calls its policy allows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import yaml

from strangler_proxy.exceptions import CliError, PlanError, SettingsError
from strangler_proxy.plan import parse_plan
from strangler_proxy.plan.model import SLUG
from strangler_proxy.proxy.policy import POLICY_VARIABLE, PolicyGuard
from strangler_proxy.proxy.settings import ProxySettings

__all__ = ["sidecar", "sidecar_plan"]


def sidecar_plan(
    service: str,
    upstream: str,
    *,
    team: str | None = None,
    read_timeout: str = "30s",
    max_concurrency: int | None = None,
    oidc_issuer: str | None = None,
    jwks_url: str | None = None,
) -> dict[str, Any]:
    """The plan a sidecar for ``service`` at ``upstream`` runs."""
    options: dict[str, Any] = {
        "url": upstream,
        "health": "/health",
        "timeouts": {"connect": "1s", "read": read_timeout},
    }
    if max_concurrency is not None:
        options["max_concurrency"] = max_concurrency
    route: dict[str, Any] = {
        "name": service,
        "match": {"path": "/**"},
        "mode": "legacy",
    }
    if team:
        route["owner"] = team
    plan: dict[str, Any] = {
        "version": 1,
        "name": f"sidecar-{service}",
        "upstreams": {service: options},
        "default": service,
        "proxy": {"role": "sidecar", "reserved": []},
        "routes": [route],
    }
    if oidc_issuer:
        plan["identity"] = {
            "oidc": {
                "issuer": oidc_issuer,
                "audience": service,
                "jwks_url": jwks_url
                or f"{oidc_issuer.rstrip('/')}/.well-known/jwks.json",
            }
        }
    return plan


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command("sidecar")
@click.option("--service", required=True, help="The service's name (a slug).")
@click.option("--upstream", required=True, help="The service's base URL.")
@click.option("--listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT.")
@click.option("--admin-port", type=int, default=0, show_default=True, help="0: any.")
@click.option("--team", default=None, help="The owning team (metrics, logs).")
@click.option("--read-timeout", default="30s", show_default=True)
@click.option("--max-concurrency", type=int, default=None, help="Bulkhead size.")
@click.option("--oidc-issuer", default=None, help="Verify bearer tokens of it.")
@click.option("--jwks-url", default=None, help="Default: ISSUER/.well-known/jwks.json.")
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=POLICY_VARIABLE,
    default=None,
    help="Zero-trust policy of internal paths (needs --oidc-issuer); "
    "re-read when it changes.",
)
@click.option(
    "--var-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var"),
    show_default=True,
    help="Where its plan and its own stores are written.",
)
def sidecar(
    service: str,
    upstream: str,
    listen: str,
    admin_port: int,
    team: str | None,
    read_timeout: str,
    max_concurrency: int | None,
    oidc_issuer: str | None,
    jwks_url: str | None,
    policy: Path | None,
    var_dir: Path,
) -> None:
    """Run the proxy in front of one service (a sidecar).

    Point the service's callers at --listen. The plan it runs is written to
    VAR_DIR/sidecar-SERVICE.yaml; its control and parity stores are its own.
    With --policy, internal calls also need a caller the policy allows.
    """
    from strangler_proxy.observe.logs import configure_logging

    from .server import run

    if not SLUG.match(service):
        raise CliError(f"--service {service!r} is not a slug (a-z, 0-9, - and _)")
    if urlsplit(upstream).scheme not in ("http", "https"):
        raise CliError(f"--upstream {upstream!r} is not an http(s) URL")
    host, port = _listen(listen)
    if policy is not None:
        if not oidc_issuer:
            raise CliError(
                "--policy needs --oidc-issuer: the callers a policy names are the "
                "client ids of the provider's verified tokens"
            )
        try:
            PolicyGuard(policy, service)  # refused here, before anything starts
        except PlanError as exc:
            raise CliError(str(exc)) from None
        os.environ[POLICY_VARIABLE] = str(policy.resolve())
    document = sidecar_plan(
        service,
        upstream,
        team=team,
        read_timeout=read_timeout,
        max_concurrency=max_concurrency,
        oidc_issuer=oidc_issuer,
        jwks_url=jwks_url,
    )
    var_dir.mkdir(parents=True, exist_ok=True)
    plan_file = var_dir / f"sidecar-{service}.yaml"
    text = yaml.safe_dump(document, sort_keys=False)
    try:
        parse_plan(text, str(plan_file))
    except PlanError as exc:
        raise CliError("\n".join(str(issue) for issue in exc.issues)) from None
    plan_file.write_text(text)
    # Its own state: never the edge proxy's promotions or comparisons.
    os.environ.setdefault(
        "STRANGLER_CONTROL_STORE", str(var_dir / f"sidecar-{service}-control.sqlite3")
    )
    os.environ.setdefault(
        "STRANGLER_PARITY_STORE", str(var_dir / f"sidecar-{service}-parity.sqlite3")
    )
    if team:
        os.environ.setdefault("STRANGLER_TEAM", team)
    try:
        settings = ProxySettings.load(
            {
                "plan": str(plan_file),
                "host": host,
                "port": port,
                "admin_port": admin_port,
                "admin_token_file": str(var_dir / f"sidecar-{service}-admin-token"),
            }
        )
    except SettingsError as exc:
        raise CliError("invalid settings:\n  " + "\n  ".join(exc.issues)) from None
    configure_logging(
        settings.log_level, settings.log_format, service=f"{service}-sidecar"
    )
    status = run(settings)
    if status:
        sys.exit(status)
