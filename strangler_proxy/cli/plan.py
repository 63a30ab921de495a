"""``strangler plan``: validate a plan, explain a routing decision, print the schema."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, urlsplit

import click
import httpx

from strangler_proxy.exceptions import CliError, PathError, PlanError
from strangler_proxy.plan import (
    Plan,
    load_plan,
    parse_plan,
    plan_json_schema,
    version_hash,
)
from strangler_proxy.plan.load import read_document
from strangler_proxy.proxy.routing import Router, canary_bucket, sticky_key
from strangler_proxy.proxy.target import normalise_target

from ._admin import admin_token, operator

__all__ = ["plan"]

# The origin the proxy names in the errors of a plan posted to its admin API.
_API_ORIGIN = "<admin api>"

# Characters left as typed when a path given on the command line is encoded;
# the rest (spaces, non-ASCII) is percent-encoded as a client would send it.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


@click.group("plan")
def plan() -> None:
    """Validate migration plans and explain their routing decisions."""


@plan.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check each plan FILE completely; print every problem with file and line.

    The version printed is the one the running proxy reports for the same plan
    (``GET /admin/plan``). Exits with status 1 if any plan is invalid.
    """
    failed = 0
    for name in files:
        try:
            loaded = load_plan(name)
        except PlanError as exc:
            failed += 1
            for issue in exc.issues:
                click.echo(issue, err=True)
            continue
        digest = version_hash(loaded)
        count = len(loaded.routes)
        noun = "route" if count == 1 else "routes"
        click.echo(f"ok: {name} ({count} {noun}, version {digest})")
    if failed == 1 and len(files) == 1:
        raise CliError(f"invalid plan: {files[0]}")
    if failed:
        raise CliError(f"{failed} of {len(files)} plans are invalid")


@plan.command("explain")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("method")
@click.argument("url_or_path")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="NAME:VALUE",
    help="A request header (repeatable).",
)
@click.option(
    "--cookie",
    "cookies",
    multiple=True,
    metavar="NAME=VALUE",
    help="A request cookie (repeatable).",
)
@click.option("--host", help="The Host header (default: the URL's host, if any).")
@click.option(
    "--client-ip",
    default="127.0.0.1",
    show_default=True,
    help="Client address, for canary stickiness by client-ip.",
)
def explain(
    file: str,
    method: str,
    url_or_path: str,
    headers: tuple[str, ...],
    cookies: tuple[str, ...],
    host: str | None,
    client_ip: str,
) -> None:
    """Show which route of FILE a request matches, why, and which upstream serves it.

    URL_OR_PATH is a full URL (``http://shop.example/api/products?page=2``) or a
    path (``/api/products``). The path is normalised as the proxy does it (dot
    segments, percent-escapes); the query string plays no part in routing.
    """
    try:
        loaded = load_plan(file)
    except PlanError as exc:
        raise CliError(str(exc)) from exc
    parts = urlsplit(url_or_path)
    if not (parts.path or "/").startswith("/"):
        raise CliError(f"not a URL or an absolute path: {url_or_path!r}")
    raw_path = quote(parts.path or "/", safe=_PATH_SAFE).encode("ascii")
    permissive = loaded.proxy.path_security == "permissive"
    try:
        path = normalise_target(
            method.upper(), raw_path, b"", permissive=permissive
        ).path
    except PathError as exc:
        raise CliError(f"the proxy refuses this path with 400: {exc}") from None
    if host is None and parts.netloc:
        host = parts.netloc.rpartition("@")[2]
    header_map = _pairs(headers, ":", "--header", lower=True)
    if host is None and "host" in header_map:
        host = header_map["host"]
    cookie_map = _pairs(cookies, "=", "--cookie", lower=False)
    method = method.upper()
    if path != (parts.path or "/"):
        click.echo(f"path {parts.path!r} normalised to {path!r}")
    for line in _explanation(
        loaded, method, path, host, header_map, cookie_map, client_ip
    ):
        click.echo(line)


@plan.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--admin",
    default="http://127.0.0.1:8081",
    show_default=True,
    help="The running proxy's admin API.",
)
@click.option(
    "--token",
    default=None,
    help="Admin token. Default: $STRANGLER_ADMIN_TOKEN, else var/admin-token.",
)
@click.option("--force", is_flag=True, help="Apply even if the gate refuses.")
@click.option("--reason", help="Why (recorded with each route the plan moves).")
@click.option("--who", help="Who applies it. Default: $USER.")
def apply(
    file: str,
    admin: str,
    token: str | None,
    force: bool,
    reason: str | None,
    who: str | None,
) -> None:
    """Validate FILE, then make it the running proxy's plan (hot reload).

    The plan is posted to ``POST /admin/reload``; the proxy validates it again,
    checks the gate of every route the plan moves towards its service (into
    canary, a higher weight, or cutover), and swaps it in, or keeps the
    running plan and answers with the errors (exit status 1). The proxy keeps
    watching its own ``--plan`` file: the next change to that file, or SIGHUP,
    replaces a plan applied from another file.
    """
    if force and not (reason or "").strip():
        raise CliError("--force needs --reason TEXT (it is recorded)")
    try:
        # Read once: the text validated is the text sent.
        text = read_document(Path(file), "plan")
        parse_plan(text, file)
    except PlanError as exc:
        for issue in exc.issues:
            click.echo(issue, err=True)
        raise CliError(f"invalid plan: {file} (not sent)") from None
    headers = {
        "authorization": f"Bearer {admin_token(token)}",
        "content-type": "application/yaml",
    }
    url = admin.rstrip("/") + "/admin/reload"
    try:
        params = {"who": operator(who)}
        if reason:
            params["reason"] = reason
        if force:
            params["force"] = "1"
        response = httpx.post(
            url, content=text.encode(), headers=headers, params=params, timeout=30
        )
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the admin API at {admin}: {exc}") from None
    if response.status_code == 401:
        raise CliError(
            "the admin API refused the token (401): pass --token, set "
            "STRANGLER_ADMIN_TOKEN, or run where var/admin-token is the proxy's"
        )
    try:
        event = response.json()
    except ValueError:
        event = {}
    if response.status_code == 422:
        for issue in event.get("errors", []):
            click.echo(f"{issue}".replace(_API_ORIGIN, file), err=True)
        raise CliError(f"the proxy rejected {file}; the running plan keeps serving")
    if response.status_code != 200 or not event.get("ok"):
        raise CliError(f"reload failed: HTTP {response.status_code} {response.text}")
    state = "applied" if event.get("changed") else "unchanged"
    click.echo(
        f"{state}: {file} (plan {event.get('plan_name')!r}, "
        f"version {event.get('version_hash')})"
    )


@plan.command("schema")
def schema() -> None:
    """Print the JSON Schema of plan files (for editors and CI)."""
    click.echo(json.dumps(plan_json_schema(), indent=2))


def _explanation(
    loaded: Plan,
    method: str,
    path: str,
    host: str | None,
    headers: dict[str, str],
    cookies: dict[str, str],
    client_ip: str,
) -> list[str]:
    router = Router(loaded)
    lines = [f"request: {method} {path} (host: {host or '-'})"]
    winner = None
    for index, check in enumerate(router.explain(method, path, host, headers)):
        name = check.route.name
        if check.matched and winner is None:
            winner = check.route
            lines.append(f"  routes[{index}] {name}: MATCH")
        elif check.matched and winner is not None:
            lines.append(f"  routes[{index}] {name}: matches, but {winner.name} wins")
        else:
            lines.append(f"  routes[{index}] {name}: {'; '.join(check.reasons)}")
    target = router.resolve(method, path, host, headers, cookies, client_ip)
    if target.route is None:
        lines.append(f"no route matches: the default upstream {loaded.default!r}")
    else:
        lines.append(f"route: {target.route.name} (mode {target.mode})")
        canary = target.route.canary
        if target.mode == "canary" and canary is not None:
            key = sticky_key(canary.sticky, headers, cookies, client_ip)
            bucket = canary_bucket(target.route.name, key)
            lines.append(
                f"canary: key {key!r} -> bucket {bucket:.2f}, weight "
                f"{canary.weight:g} -> {target.side} side"
            )
    upstream = loaded.upstreams[target.upstream]
    lines.append(f"served by: {target.upstream} ({target.side} side, {upstream.url})")
    if target.fallback is not None:
        lines.append(f"fallback: {target.fallback} if {target.upstream} fails")
    if target.shadow is not None:
        lines.append(f"shadow: mirrored to {target.shadow}")
    return lines


def _pairs(
    items: tuple[str, ...], separator: str, option: str, *, lower: bool
) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(separator)
        if not sep or not name.strip():
            raise CliError(f"{option} takes NAME{separator}VALUE, got {item!r}")
        key = name.strip().lower() if lower else name.strip()
        pairs[key] = value.strip()
    return pairs
