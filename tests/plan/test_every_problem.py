"""One route's broken field hides nothing of another route.

When fields fail to validate, the checks of the plan as a whole still run on
the rest: a broken field is dropped if it has a default, a required one gets a
stand-in (a route's name, an upstream's URL), and no issue is reported about
what was set aside (it would be a guess).
"""

from __future__ import annotations

import textwrap

import pytest

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import parse_plan

PLAN = textwrap.dedent(
    """\
    default: monolith
    upstreams:
      monolith: {url: "http://127.0.0.1:8000"}
      catalog: {max_concurrency: 3}
    routes:
      - name: a
        match: {path: /a}
        mode: canary
        service: catalgo
        canary: {weight: -1}
      - mode: cutover
        legacy: nowhere
        service: catalog
      - {name: all, match: {path: /c/**}}
      - {name: hidden, match: {path: /c/x}}
      - {name: d, match: {path: '/d/../e'}, service: nope, mode: shadow}
      - {name: e, match: {path: /d/x}, timeouts: {read: 0}}
    """
)


def issues(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        parse_plan(text, "plan.yaml")
    return info.value.issues


def test_every_route_reports_its_own_problems() -> None:
    assert issues(PLAN) == [
        # The upstream without a URL still exists for the routes naming it.
        "plan.yaml:4: upstreams.catalog.url: required field missing",
        "plan.yaml:9: routes[0].service: unknown upstream 'catalgo' (declared: "
        "catalog, monolith)",
        # The canary block was set aside: no "mode 'canary' needs a canary block".
        "plan.yaml:10: routes[0].canary.weight: Input should be greater than or "
        "equal to 0",
        "plan.yaml:11: routes[1].name: required field missing",
        "plan.yaml:12: routes[1].legacy: unknown upstream 'nowhere' (declared: "
        "catalog, monolith)",
        # Routes without their name or their match are left out of the
        # reachability search, the others are not.
        "plan.yaml:15: routes[3].match: route 'hidden' can never match: route "
        "'all' (routes[2]) comes first and matches every request it would",
        "plan.yaml:16: routes[4].match.path: dot segment '..' in a path pattern: "
        "the proxy resolves dot segments before routing, so it can never match",
        "plan.yaml:16: routes[4].service: unknown upstream 'nope' (declared: "
        "catalog, monolith)",
        "plan.yaml:17: routes[5].timeouts.read: must be above 0 (got 0): a "
        "timeout of 0 is not 'no timeout'; leave it unset to inherit, or give a "
        "long one (e.g. 1h)",
    ]


def test_two_broken_routes_both_report_their_plan_errors() -> None:
    text = textwrap.dedent(
        """\
        default: monolith
        upstreams:
          monolith: {url: "http://127.0.0.1:8000"}
        routes:
          - {name: A, mode: cutover, service: one}
          - {name: b, mode: shadow, service: two, canary: {sticky: [nope]}}
        """
    )
    assert issues(text) == [
        "plan.yaml:5: routes[0].name: 'A' is not a slug (lower-case letters, "
        "digits, '-' and '_'; starts and ends with a letter or digit)",
        "plan.yaml:5: routes[0].service: unknown upstream 'one' (declared: monolith)",
        "plan.yaml:6: routes[1].canary.weight: required field missing",
        "plan.yaml:6: routes[1].canary.sticky: unknown sticky source 'nope' "
        "(use cookie:NAME, header:NAME or client-ip)",
        "plan.yaml:6: routes[1].service: unknown upstream 'two' (declared: monolith)",
    ]


def test_a_route_that_is_not_a_mapping_hides_nothing_else() -> None:
    text = textwrap.dedent(
        """\
        default: monolith
        upstreams:
          monolith: {url: "http://127.0.0.1:8000"}
        routes:
          - just a string
          - {name: b, legacy: nowhere}
        """
    )
    assert issues(text) == [
        "plan.yaml:5: routes[0]: Input should be a valid dictionary or instance "
        "of Route (got 'just a string')",
        "plan.yaml:6: routes[1].legacy: unknown upstream 'nowhere' (declared: "
        "monolith)",
    ]


def test_a_broken_default_hides_nothing_else() -> None:
    text = textwrap.dedent(
        """\
        default: [monolith]
        upstreams:
          monolith: {url: "http://127.0.0.1:8000"}
        routes:
          - {name: b, service: nowhere, mode: cutover}
        """
    )
    assert issues(text) == [
        "plan.yaml:1: default: Input should be a valid string (got ['monolith'])",
        "plan.yaml:5: routes[0].service: unknown upstream 'nowhere' (declared: "
        "monolith)",
    ]
