"""``strangler promote|rollback|status``: the cutover gate, on a running proxy.

The commands talk to the proxy's admin API (``--admin``, default
``http://127.0.0.1:8081``) with its token (``--token``, else
``STRANGLER_ADMIN_TOKEN``, else the file ``var/admin-token`` the proxy writes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import httpx

from strangler_proxy.exceptions import CliError, UnknownRouteError
from strangler_proxy.reports import same_team

from ._admin import admin_token, operator

__all__ = ["commands", "promote", "rollback", "status"]

DEFAULT_ADMIN = "http://127.0.0.1:8081"


def _call(
    admin: str, token: str | None, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    headers = {"authorization": f"Bearer {admin_token(token)}"}
    try:
        with httpx.Client(base_url=admin, timeout=30.0) as client:
            response = client.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the admin API at {admin}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text}
    if response.status_code == 401:
        raise CliError("the admin API refused the token")
    return response.status_code, data


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _admin_options(command: Any) -> Any:
    command = click.option(
        "--token",
        default=None,
        help="Admin token. Default: $STRANGLER_ADMIN_TOKEN, else var/admin-token.",
    )(command)
    return click.option(
        "--admin",
        default=DEFAULT_ADMIN,
        show_default=True,
        help="URL of the proxy's admin API.",
    )(command)


def _unknown_route(admin: str, token: str | None, route: str) -> CliError:
    """``no route named 'ordres'; did you mean 'orders'? (known routes: ...)``,
    the names asked of the admin API."""
    code, data = _call(admin, token, "GET", "/admin/routes")
    if code != 200:
        return CliError(f"no route named {route!r}")
    names = [str(r["name"]) for r in data.get("routes", [])]
    return CliError(str(UnknownRouteError(route, names)))


def _refused(data: dict[str, Any]) -> CliError:
    lines = [str(data.get("error", "refused"))]
    gate = data.get("gate")
    if gate:
        lines += [f"  - {failure}" for failure in gate.get("failures", [])]
        lines.append("use --force --reason TEXT to promote anyway (recorded)")
    return CliError("\n".join(lines))


@click.command()
@click.argument("route")
@click.option(
    "--to",
    "to",
    required=True,
    help="Target state: shadow, canary:N (N percent of callers) or cutover.",
)
@click.option("--force", is_flag=True, help="Override the gate or skip a step.")
@click.option("--reason", default="", help="Why; required with --force.")
@click.option("--who", default=None, help="Who promotes. Default: $USER.")
@_admin_options
def promote(
    route: str,
    to: str,
    force: bool,
    reason: str,
    who: str | None,
    admin: str,
    token: str | None,
) -> None:
    """Move ROUTE towards its service, if the cutover gate allows."""
    if force and not reason.strip():
        raise CliError("--force needs --reason")
    code, data = _call(
        admin,
        token,
        "POST",
        f"/admin/routes/{route}/promote",
        {"to": to, "force": force, "reason": reason, "who": operator(who)},
    )
    if code == 404:
        raise _unknown_route(admin, token, route)
    if code != 200:
        raise _refused(data)
    change = data["change"]
    forced = " (forced)" if change["forced"] else ""
    click.echo(f"{route}: {change['from']} -> {change['to']}{forced}")


@click.command()
@click.argument("route")
@click.option(
    "--to",
    "to",
    default=None,
    help="legacy, shadow or a lower canary:N. Default: the previous state.",
)
@click.option("--reason", default="", help="Why (recorded).")
@click.option("--who", default=None, help="Who rolls back. Default: $USER.")
@_admin_options
def rollback(
    route: str,
    to: str | None,
    reason: str,
    who: str | None,
    admin: str,
    token: str | None,
) -> None:
    """Move ROUTE back towards the monolith; always allowed."""
    code, data = _call(
        admin,
        token,
        "POST",
        f"/admin/routes/{route}/rollback",
        {"to": to, "reason": reason, "who": operator(who)},
    )
    if code == 404:
        raise _unknown_route(admin, token, route)
    if code != 200:
        raise _refused(data)
    change = data["change"]
    click.echo(f"{route}: {change['from']} -> {change['to']}")


def _state_line(row: dict[str, Any]) -> str:
    """``cutover (runtime override; plan says canary:10)``, or the plain state."""
    plan_mode, effective = row["plan_mode"], row["effective_mode"]
    if row.get("override") is not None:
        return f"{effective} (runtime override; plan says {plan_mode})"
    if plan_mode != effective:
        return f"{effective} (plan says {plan_mode})"
    return str(effective)


def _owners(admin: str, token: str | None) -> dict[str, str | None]:
    """Route name -> owner, as the running plan says (``GET /admin/routes``)."""
    code, data = _call(admin, token, "GET", "/admin/routes")
    if code != 200:
        raise CliError(str(data.get("error", f"admin API answered {code}")))
    return {str(r["name"]): r.get("owner") for r in data.get("routes", [])}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@click.option("--team", help="Only the routes this team owns (the plan's owner).")
@_admin_options
def status(as_json: bool, team: str | None, admin: str, token: str | None) -> None:
    """Per route: plan vs effective mode, owner, monolith share, gate, last
    change."""
    code, data = _call(admin, token, "GET", "/admin/status")
    if code != 200:
        raise CliError(str(data.get("error", f"admin API answered {code}")))
    owners = _owners(admin, token)
    for row in data["routes"]:
        row["owner"] = owners.get(row["route"])
    if team is not None:
        if not any(same_team(owner, team) for owner in owners.values()):
            known = ", ".join(sorted({o for o in owners.values() if o})) or "none"
            raise CliError(f"no route is owned by {team!r} (teams: {known})")
        data["routes"] = [r for r in data["routes"] if same_team(r["owner"], team)]
        data["team"] = team
    if as_json:
        import orjson

        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    for row in data["routes"]:
        click.echo(f"{row['route']}: {_state_line(row)}")
        if row["owner"]:
            click.echo(f"  owner: {row['owner']}")
        click.echo(f"  monolith share: {row['monolith_share']:g}%")
        gate = row["gate"]
        if gate is not None:
            evidence = gate["evidence"]
            verdict = "pass" if gate["allowed"] else "fail"
            click.echo(
                f"  gate: {verdict} (samples {evidence['samples']}, mismatch "
                f"{evidence['mismatch_rate'] * 100:.2f}%, errors "
                f"{evidence['error_rate'] * 100:.2f}%)"
            )
            for item in gate.get("invariants", []):
                value = "?" if item["value"] is None else item["value"]
                mark = "ok" if item["ok"] else "FAILS"
                click.echo(
                    f"    invariant {item['name']}: {value} (max {item['threshold']}) "
                    f"{mark}"
                )
            for failure in gate["failures"]:
                click.echo(f"    - {failure}")
        last = row["last_change"]
        if last is not None:
            forced = ", forced" if last["forced"] else ""
            click.echo(
                f"  last change: {last['from']} -> {last['to']} by {last['who']} "
                f"at {_when(last['at'])}{forced}: {last['why'] or '-'}"
            )


commands = [promote, rollback, status]
"""Registered in :mod:`.commands`."""
