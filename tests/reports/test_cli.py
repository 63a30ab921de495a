"""``strangler report``: formats, output file and --fail-over exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strangler_proxy.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_lists_routes_fields_and_example(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--store", str(store_path))
    assert code == 0
    assert "products" in out and "orders" in out
    assert "25.00%" in out  # 2 of 8 mismatched
    assert "body.results[*].price" in out
    assert "body.results[0].price: legacy 10 != service 12" in out
    assert "\x1b[" not in out  # piped: no colour


def test_json_follows_the_schema(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--store", str(store_path), "--format", "json")
    assert code == 0
    data = json.loads(out)
    products = {r["route"]: r for r in data["routes"]}["products"]
    assert products["sample_size"] == 10
    assert products["mismatch_rate"] == 0.25
    assert products["mismatch_rate_with_noise"] == 0.375
    assert products["coverage"] == 0.8
    assert products["fields"][0]["path"] == "body.results[*].price"
    assert products["example"]["differences"][0]["service"] == 12


def test_html_to_a_file_is_self_contained(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "report.html"
    args = ("--store", str(store_path), "--format", "html", "--output", str(target))
    code, out, _ = run(capsys, *args)
    assert code == 0 and out == ""
    page = target.read_text()
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<script src" not in page and "http://" not in page
    assert "<mark class=service>12</mark>" in page
    assert "body.results[*].price" in page


def test_route_and_since_select(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--store", str(store_path), "--format", "json", "--route", "orders")
    code, out, _ = run(capsys, *args, "--since", "1h")
    assert code == 0
    assert [r["route"] for r in json.loads(out)["routes"]] == ["orders"]


@pytest.mark.parametrize(
    ("threshold", "code"), [("0.5%", 1), ("24%", 1), ("25%", 0), ("0.3", 0)]
)
def test_fail_over_exit_codes(
    store_path: Path, capsys: pytest.CaptureFixture[str], threshold: str, code: int
) -> None:
    got, _, err = run(
        capsys, "--store", str(store_path), "--format", "json", "--fail-over", threshold
    )
    assert got == code
    assert ("products: mismatch rate 25.00%" in err) == (code == 1)


def test_clean_route_passes_a_zero_threshold(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--store", str(store_path), "--route", "orders", "--fail-over", "0%")
    assert run(capsys, *args)[0] == 0


def test_store_from_the_environment(
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRANGLER_PARITY_STORE", str(store_path))
    code, out, _ = run(capsys, "--format", "json")
    assert code == 0 and len(json.loads(out)["routes"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fail-over", "lots"), "not a rate"),
        (("--since", "yesterday"), "not a duration"),
    ],
)
def test_bad_options_are_cli_errors(
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    code, _, err = run(capsys, "--store", str(store_path), *args)
    assert code == 1 and message in err


def test_missing_store_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--store", str(tmp_path / "none.sqlite3"))
    assert code == 1 and "no parity store" in err
    assert not (tmp_path / "none.sqlite3").exists()


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_unknown_route_is_an_error_naming_the_known_ones(
    store_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    args = ("--store", str(store_path), "--format", fmt)
    code, out, err = run(capsys, *args, "--route", "prodcts")
    assert (code, out) == (1, "")
    assert "no route named 'prodcts' in the parity store" in err
    assert "did you mean 'products'?" in err
    assert "known routes: orders, products" in err
    code, out, err = run(capsys, *args, "--route", "nosuch")
    assert (code, out) == (1, "")
    assert "did you mean" not in err and "known routes: orders, products" in err


OWNED_PLAN = """\
version: 1
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:9"}
  catalog: {url: "http://127.0.0.1:10"}
routes:
  - name: products
    match: {path: /api/products/**}
    mode: shadow
    service: catalog
    owner: catalog-team
  - name: orders
    match: {path: /api/orders/**}
    owner: orders-team
"""


def test_team_selects_the_routes_a_team_owns(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(OWNED_PLAN)
    args = ["--store", str(store_path), "--plan", str(plan)]
    code, out, _ = run(capsys, *args, "--format", "json", "--team", "Catalog-Team")
    assert code == 0
    data = json.loads(out)
    assert data["team"] == "Catalog-Team"
    assert [(r["route"], r["owner"]) for r in data["routes"]] == [
        ("products", "catalog-team")
    ]
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert "owner" in out and "orders-team" in out and "catalog-team" in out


def test_team_needs_a_plan_and_a_known_team(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--store", str(store_path), "--team", "x")
    assert code == 1 and "--plan" in err
    plan = tmp_path / "plan.yaml"
    plan.write_text(OWNED_PLAN)
    code, _, err = run(
        capsys, "--store", str(store_path), "--plan", str(plan), "--team", "payments"
    )
    assert code == 1
    assert "'payments'" in err and "catalog-team, orders-team" in err
