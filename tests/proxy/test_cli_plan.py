"""``strangler plan validate|explain|schema``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from strangler_proxy.cli import main
from strangler_proxy.cli.plan import plan
from strangler_proxy.exceptions import CliError
from strangler_proxy.plan import load_plan, version_hash
from strangler_proxy.proxy.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
PLANS = Path(__file__).parent / "plans"
FULL = str(PLANS / "full.yaml")
BROKEN = """\
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:8000"}
routes:
  - {name: a, mode: cutover}
  - {name: b, match: {path: /x, metods: [GET]}}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(plan, list(args))


@pytest.fixture
def broken(tmp_path: Path) -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    return str(path)


def test_validate_ok() -> None:
    result = run("validate", FULL)
    assert result.exit_code == 0, result.output
    digest = version_hash(load_plan(FULL))
    assert result.output == f"ok: {FULL} (4 routes, version {digest})\n"


def test_validate_prints_the_version_the_proxy_reports(tmp_path: Path) -> None:
    # The running proxy reports the version of the plan it parsed; validate
    # prints the same for the same plan, however the file is written.
    source = ROOT / "migration_plans" / "00-all-legacy.yaml"
    runtime = Runtime.from_plan(load_plan(source), source=str(source))
    try:
        served = runtime.version_hash
    finally:
        asyncio.run(runtime.aclose())
    rewritten = tmp_path / "rewritten.yaml"
    text = source.read_text().replace("routes: []", "routes: []  # none yet")
    rewritten.write_text("# reviewed by the platform team\n" + text)
    for name in (str(source), str(rewritten)):
        result = run("validate", name)
        assert result.exit_code == 0, result.output
        assert result.output.endswith(f"(0 routes, version {served})\n")


def test_validate_refuses_a_billion_laughs(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    path.write_text("\n".join(lines) + "\n")
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:5: over a limit: alias *d (7,381 values)")


def test_apply_refuses_a_big_file_before_sending(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("#" * (2 * 1024 * 1024))
    # Nothing listens on the admin port: the file is refused before any request.
    result = run("apply", str(path), "--admin", "http://127.0.0.1:9", "--token", "t")
    assert isinstance(result.exception, CliError)
    assert str(result.exception) == f"invalid plan: {path} (not sent)"
    assert result.stderr == (
        f"{path}: plan too large: 2,097,152 bytes, over the limit of 1 MiB "
        "(1,048,576 bytes)\n"
    )


def test_validate_reports_every_problem(broken: str) -> None:
    result = run("validate", FULL, broken)
    assert isinstance(result.exception, CliError)
    assert str(result.exception) == "1 of 2 plans are invalid"
    assert result.stderr.splitlines() == [
        f"{broken}:5: routes[0].service: mode 'cutover' needs a service upstream",
        f"{broken}:6: routes[1].match.metods: unknown field (did you mean 'methods'?)",
    ]
    assert result.stdout.startswith(f"ok: {FULL} ")


def test_validate_through_main_exits_1(
    broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "validate", broken]) == 1
    err = capsys.readouterr().err
    assert err.endswith(f"error: invalid plan: {broken}\n")
    assert main(["plan", "validate", FULL]) == 0


def test_validate_needs_a_file() -> None:
    result = run("validate")
    assert result.exit_code == 2
    assert "Missing argument" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["GET", "http://shop.example.com/api/products/7?page=2"],
            [
                "request: GET /api/products/7 (host: shop.example.com)",
                "  routes[0] admin: path '/api/products/7' does not match '/admin/**'",
                "  routes[1] product-detail: MATCH",
                "  routes[2] products: matches, but product-detail wins",
                "  routes[3] orders-beta: path '/api/products/7' does not match "
                "'/api/orders/**'; header x-beta missing",
                "route: product-detail (mode canary)",
            ],
        ),
        (
            ["post", "/api/products/7"],
            [
                "request: POST /api/products/7 (host: -)",
                "  routes[0] admin: path '/api/products/7' does not match '/admin/**'",
                "  routes[1] product-detail: method POST not in [GET, HEAD]",
                "  routes[2] products: method POST not in [GET, HEAD]",
                "  routes[3] orders-beta: path '/api/products/7' does not match "
                "'/api/orders/**'; header x-beta missing; host (none) does not "
                "match '*.example.com'",
                "no route matches: the default upstream 'monolith'",
                "served by: monolith (legacy side, http://127.0.0.1:8000)",
            ],
        ),
        (
            [
                "GET",
                "/api/orders/1",
                "--header",
                "X-Beta: 1",
                "--host",
                "eu.example.com:8080",
            ],
            [
                "request: GET /api/orders/1 (host: eu.example.com:8080)",
                "  routes[0] admin: path '/api/orders/1' does not match '/admin/**'",
                "  routes[1] product-detail: path '/api/orders/1' does not match "
                "'/api/products/*'",
                "  routes[2] products: path '/api/orders/1' does not match "
                "'/api/products/**'",
                "  routes[3] orders-beta: MATCH",
                "route: orders-beta (mode cutover)",
                "served by: orders (service side, https://orders.internal:8443)",
                "fallback: monolith if orders fails",
            ],
        ),
        (
            ["GET", "/api/products"],
            [
                "request: GET /api/products (host: -)",
                "  routes[0] admin: path '/api/products' does not match '/admin/**'",
                "  routes[1] product-detail: path '/api/products' does not match "
                "'/api/products/*'",
                "  routes[2] products: MATCH",
                "  routes[3] orders-beta: path '/api/products' does not match "
                "'/api/orders/**'; header x-beta missing; host (none) does not "
                "match '*.example.com'",
                "route: products (mode shadow)",
                "served by: monolith (legacy side, http://127.0.0.1:8000)",
                "shadow: mirrored to catalog",
            ],
        ),
    ],
)
def test_explain(args: list[str], expected: list[str]) -> None:
    result = run("explain", FULL, *args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[: len(expected)] == expected


def test_explain_canary_shows_bucket_and_is_sticky() -> None:
    sides = set()
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        result = run(
            "explain",
            FULL,
            "GET",
            "/api/products/7",
            "--cookie",
            "sessionid=abc",
            "--client-ip",
            ip,
        )
        assert result.exit_code == 0, result.output
        canary = [x for x in result.output.splitlines() if x.startswith("canary:")]
        assert len(canary) == 1
        assert "key 'cookie:sessionid=abc' -> bucket " in canary[0]
        assert "weight 25 -> " in canary[0]
        sides.add(canary[0].rsplit("-> ", 1)[1])
    assert len(sides) == 1


def test_explain_routes_on_the_normalised_path() -> None:
    result = run("explain", FULL, "GET", "/api/../%61dmin/users")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("path '/api/../%61dmin/users' normalised to '/admin/users'")
    assert "route: admin (mode legacy)" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["GET", "/../etc/passwd"], "the proxy refuses this path with 400: "),
        (["GET", "/x", "--header", "no-colon"], "--header takes NAME:VALUE"),
        (["GET", "/x", "--cookie", "novalue"], "--cookie takes NAME=VALUE"),
        (["GET", "relative/path"], "not a URL or an absolute path"),
    ],
)
def test_explain_bad_arguments(args: list[str], message: str) -> None:
    result = run("explain", FULL, *args)
    assert isinstance(result.exception, CliError)
    assert message in str(result.exception)


def test_explain_invalid_plan(broken: str) -> None:
    result = run("explain", broken, "GET", "/")
    assert isinstance(result.exception, CliError)
    assert f"{broken}:5: routes[0].service" in str(result.exception)


def test_schema() -> None:
    result = run("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["required"]) == {"default", "upstreams"}
    assert "Route" in schema["$defs"]


@pytest.mark.parametrize("command", [[], ["validate"], ["explain"], ["schema"]])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
