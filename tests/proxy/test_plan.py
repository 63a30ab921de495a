"""Loading plans: every problem is reported with file, line and field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import (
    Plan,
    load_plan,
    parse_plan,
    plan_json_schema,
    version_hash,
)

ROOT = Path(__file__).resolve().parents[2]
PLANS = Path(__file__).parent / "plans"

HEAD = """\
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:8000"}
  catalog: {url: "http://127.0.0.1:8101"}
"""  # four lines: routes written after it start on line 5


def issues(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        parse_plan(textwrap.dedent(text), "plan.yaml")
    assert str(info.value).endswith("\n".join(info.value.issues))
    return info.value.issues


def test_minimal_plan() -> None:
    plan = parse_plan(HEAD, "plan.yaml")
    assert plan.default == "monolith"
    assert plan.routes == ()
    assert plan.upstreams["catalog"].url == "http://127.0.0.1:8101"


def test_full_example_plan() -> None:
    plan = load_plan(PLANS / "full.yaml")
    assert [r.name for r in plan.routes] == [
        "admin",
        "product-detail",
        "products",
        "orders-beta",
    ]
    catalog = plan.upstreams["catalog"]
    assert catalog.timeouts.connect == 0.5
    assert catalog.timeouts.total == 10.0
    assert catalog.circuit_breaker is not None
    assert catalog.circuit_breaker.failure_rate == 0.5
    assert catalog.health is not None and catalog.health.interval == 2.0
    monolith_health = plan.upstreams["monolith"].health
    assert monolith_health is not None and monolith_health.path == "/health"
    detail = plan.routes[1]
    assert detail.canary is not None and detail.canary.weight == 25
    assert detail.retries is not None
    assert detail.retries.on == ("connect-failure", "5xx")  # `on:` is not True
    products = plan.routes[2]
    assert products.match.methods == ("GET", "HEAD")
    assert products.shadow is not None
    assert products.shadow.sample == 0.1
    assert products.shadow.max_body == 64 * 1024
    beta = plan.routes[3]
    assert beta.match.headers == {"x-beta": "1"}
    assert beta.match.host == "*.example.com"
    assert plan.proxy.limits.max_body == 10 * 1024 * 1024
    assert plan.proxy.limits.request_deadline == 60.0


@pytest.mark.parametrize(
    "path", sorted((ROOT / "migration_plans").glob("*.yaml")), ids=lambda p: p.name
)
def test_tutorial_plans_load(path: Path) -> None:
    assert load_plan(path).default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            HEAD + "routes:\n  - name: a\n    match: {path: /a, metods: [GET]}\n",
            [
                "plan.yaml:7: routes[0].match.metods: unknown field "
                "(did you mean 'methods'?)"
            ],
            id="unknown-key",
        ),
        pytest.param(
            HEAD + "colour: blue\n",
            ["plan.yaml:5: colour: unknown field"],
            id="unknown-top-level-key",
        ),
        pytest.param(
            HEAD + "routes:\n  - name: a\n    match: {path: [/a]}\n",
            [
                "plan.yaml:7: routes[0].match.path: Input should be a valid string "
                "(got ['/a'])"
            ],
            id="wrong-type",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, mode: live}\n",
            [
                "plan.yaml:6: routes[0].mode: Input should be 'legacy', 'shadow', "
                "'canary' or 'cutover' (got 'live')"
            ],
            id="bad-mode",
        ),
        pytest.param(
            HEAD.replace(
                '"http://127.0.0.1:8101"}', "x, timeouts: {read: 5 sec}}"
            ).replace("url: x", 'url: "http://h"'),
            [
                "plan.yaml:4: upstreams.catalog.timeouts.read: not a duration: "
                "'5 sec' (use e.g. 500ms, 2s, 1m)"
            ],
            id="bad-duration",
        ),
        pytest.param(
            HEAD + "proxy:\n  limits:\n    max_body: 10 MB\n    max_uri: lots\n",
            [
                "plan.yaml:8: proxy.limits.max_uri: not a size: 'lots' "
                "(use e.g. 64KiB, 10MiB)"
            ],
            id="bad-size",
        ),
        pytest.param(
            HEAD + "proxy:\n  retry_budget: {ratio: 150%}\n",
            [
                "plan.yaml:6: proxy.retry_budget.ratio: must be from 0 to 1, or 0% "
                "to 100% (got 1.5)"
            ],
            id="bad-ratio",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, mode: shadow, service: catalgo}\n",
            [
                "plan.yaml:6: routes[0].service: unknown upstream 'catalgo' "
                "(declared: catalog, monolith)"
            ],
            id="unknown-upstream",
        ),
        pytest.param(
            HEAD.replace("default: monolith", "default: legacy"),
            [
                "plan.yaml:1: default: unknown upstream 'legacy' "
                "(declared: catalog, monolith)"
            ],
            id="unknown-default",
        ),
        pytest.param(
            HEAD + "routes:\n"
            "  - {name: a, match: {path: /a}}\n"
            "  - {name: b, match: {path: /b}}\n"
            "  - {name: a, match: {path: /c}}\n",
            ["plan.yaml:8: routes[2].name: duplicate route name 'a' (see routes[0])"],
            id="duplicate-route",
        ),
        pytest.param(
            HEAD + "routes:\n"
            "  - name: products\n"
            "    match: {path: /api/products/**}\n"
            "  - name: detail\n"
            "    match: {path: /api/products/*, methods: [GET]}\n",
            [
                "plan.yaml:9: routes[1].match: route 'detail' can never match: route "
                "'products' (routes[0]) comes first and matches every request it "
                "would"
            ],
            id="unreachable-route",
        ),
        pytest.param(
            HEAD + "routes:\n  - name: a\n    match: {path: /a\n",
            [
                "plan.yaml:8: invalid YAML: while parsing a flow mapping "
                "did not find expected ',' or '}'"
            ],
            id="bad-yaml",
        ),
        pytest.param(
            HEAD + "---\n" + HEAD,
            [
                "plan.yaml:5: invalid YAML: expected a single document in the stream "
                "but found another document"
            ],
            id="two-documents",
        ),
        pytest.param(
            HEAD + "routes:\n  - name: a\n    name: b\n",
            [
                "plan.yaml:7: routes[0].name: duplicate key 'name' "
                "(first written on line 6)"
            ],
            id="duplicate-key",
        ),
        pytest.param(
            "- just\n- a list\n",
            ["plan.yaml:1: (plan): must be a mapping of plan fields, not list"],
            id="not-a-mapping",
        ),
        pytest.param(
            "",
            ["plan.yaml:1: (plan): must be a mapping of plan fields, not empty"],
            id="empty",
        ),
        pytest.param(
            "upstreams: {}\n",
            [
                "plan.yaml:1: default: required field missing",
                "plan.yaml:1: upstreams: declare at least one upstream",
            ],
            id="missing-fields",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: Products}\n",
            [
                "plan.yaml:6: routes[0].name: 'Products' is not a slug (lower-case "
                "letters, digits, '-' and '_'; starts and ends with a letter or "
                "digit)"
            ],
            id="route-name-not-slug",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, mode: cutover}\n",
            ["plan.yaml:6: routes[0].service: mode 'cutover' needs a service upstream"],
            id="cutover-needs-service",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, mode: canary, service: catalog}\n",
            [
                "plan.yaml:6: routes[0].canary: mode 'canary' needs a canary block "
                "(weight)"
            ],
            id="canary-needs-block",
        ),
        pytest.param(
            HEAD + "routes:\n"
            "  - name: a\n"
            "    mode: canary\n"
            "    service: catalog\n"
            "    canary: {weight: 101}\n",
            [
                "plan.yaml:9: routes[0].canary.weight: Input should be less than or "
                "equal to 100"
            ],
            id="canary-weight-range",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, fallback: legacy}\n",
            [
                "plan.yaml:6: routes[0].fallback: fallback 'legacy' needs a service "
                "upstream"
            ],
            id="fallback-needs-service",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, match: {methods: [GET, 'BAD METHOD']}}\n",
            ["plan.yaml:6: routes[0].match.methods: not an HTTP method: 'BAD METHOD'"],
            id="bad-method",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, match: {methods: []}}\n",
            [
                "plan.yaml:6: routes[0].match.methods: is empty: list at least one "
                "method, or leave it out"
            ],
            id="empty-methods",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, match: {path: api/x}}\n",
            ["plan.yaml:6: routes[0].match.path: a path pattern must start with '/'"],
            id="path-not-absolute",
        ),
        pytest.param(
            HEAD + "routes:\n  - {name: a, match: {path: /api/**x}}\n",
            [
                "plan.yaml:6: routes[0].match.path: '*' and '**' must be whole "
                "segments, not part of '**x'"
            ],
            id="glob-not-whole-segment",
        ),
        pytest.param(
            HEAD.replace('"http://127.0.0.1:8101"', '"http://h:81/api?x=1"'),
            [
                "plan.yaml:4: upstreams.catalog.url: must not have a path ('/api'): "
                "'http://h:81/api?x=1'"
            ],
            id="url-with-path",
        ),
        pytest.param(
            HEAD.replace('"http://127.0.0.1:8101"', '"http://h?x=1"'),
            [
                "plan.yaml:4: upstreams.catalog.url: must not have a query or "
                "fragment: 'http://h?x=1'"
            ],
            id="url-with-query",
        ),
        pytest.param(
            HEAD.replace('"http://127.0.0.1:8101"', "ftp://h"),
            [
                "plan.yaml:4: upstreams.catalog.url: must be an http:// or https:// "
                "URL, not 'ftp://h'"
            ],
            id="url-scheme",
        ),
        pytest.param(
            HEAD.replace('"http://127.0.0.1:8101"', "http://"),
            ["plan.yaml:4: upstreams.catalog.url: has no host: 'http://'"],
            id="url-without-host",
        ),
        pytest.param(
            HEAD.replace("catalog:", "Catalog:"),
            [
                "plan.yaml:2: upstreams: upstream name 'Catalog' is not a slug "
                "(lower-case letters, digits, '-' and '_')"
            ],
            id="upstream-name-not-slug",
        ),
        pytest.param(
            HEAD + "routes:\n"
            "  - name: a\n"
            "    mode: canary\n"
            "    service: catalog\n"
            "    canary: {weight: 5, sticky: ['session']}\n",
            [
                "plan.yaml:9: routes[0].canary.sticky: unknown sticky source "
                "'session' (use cookie:NAME, header:NAME or client-ip)"
            ],
            id="bad-sticky",
        ),
    ],
)
def test_plan_errors(text: str, expected: list[str]) -> None:
    assert issues(text) == expected


def test_all_problems_are_reported_in_line_order() -> None:
    text = """\
        default: monolith
        upstreams:
          monolith:
            url: http://127.0.0.1:8000
            timeouts: {connect: soon}
          catalog: {url: "http://127.0.0.1:8101", max_concurency: 3}
        routes:
          - name: a
            mode: shadow
          - name: b
            match: {path: /b, methods: [GET]}
            canary: {weight: -1}
        """
    assert issues(text) == [
        "plan.yaml:5: upstreams.monolith.timeouts.connect: not a duration: "
        "'soon' (use e.g. 500ms, 2s, 1m)",
        "plan.yaml:6: upstreams.catalog.max_concurency: unknown field "
        "(did you mean 'max_concurrency'?)",
        "plan.yaml:8: routes[0].service: mode 'shadow' needs a service upstream",
        "plan.yaml:11: routes[1].match: route 'b' can never match: route 'a' "
        "(routes[0]) comes first and matches every request it would",
        "plan.yaml:12: routes[1].canary.weight: Input should be greater than or "
        "equal to 0",
    ]


def test_semantic_problems_are_all_reported() -> None:
    text = HEAD + textwrap.dedent(
        """\
        routes:
          - {name: a, mode: shadow}
          - {name: a, legacy: nowhere, match: {path: /x}}
          - {name: c, match: {path: /x, methods: [GET]}}
        """
    )
    assert issues(text) == [
        "plan.yaml:6: routes[0].service: mode 'shadow' needs a service upstream",
        "plan.yaml:7: routes[1].legacy: unknown upstream 'nowhere' (declared: "
        "catalog, monolith)",
        "plan.yaml:7: routes[1].name: duplicate route name 'a' (see routes[0])",
        "plan.yaml:7: routes[1].match: route 'a' can never match: route 'a' "
        "(routes[0]) comes first and matches every request it would",
        "plan.yaml:8: routes[2].match: route 'c' can never match: route 'a' "
        "(routes[0]) comes first and matches every request it would",
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("{path: /x, methods: [POST]}", "{path: /x, methods: [GET]}"),
        ("{path: /x, headers: {x-beta: '1'}}", "{path: /x}"),
        ("{path: /x, host: a.example.com}", "{path: /x}"),
        ("{path: /x, host: '*.example.com'}", "{path: /x, host: example.com}"),
        ("{path: /x/*}", "{path: /x/**}"),
        ("{path: /x, methods: [GET]}", "{path: /x}"),
    ],
)
def test_narrower_earlier_route_does_not_hide_later(first: str, second: str) -> None:
    text = HEAD + f"routes:\n  - {{name: a, match: {first}}}\n"
    text += f"  - {{name: b, match: {second}}}\n"
    assert len(parse_plan(text, "plan.yaml").routes) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("{path: /x, methods: [GET]}", "{path: /x, methods: [HEAD]}"),
        ("{path: /x, headers: {x-beta: '*'}}", "{path: /x, headers: {x-beta: '1'}}"),
        ("{path: /x, host: '*.example.com'}", "{path: /x, host: a.example.com}"),
        ("{path: /**}", "{path: /x, headers: {a: b}, host: h.com}"),
    ],
)
def test_broader_earlier_route_hides_later(first: str, second: str) -> None:
    text = HEAD + f"routes:\n  - {{name: a, match: {first}}}\n"
    text += f"  - {{name: b, match: {second}}}\n"
    assert issues(text) == [
        "plan.yaml:7: routes[1].match: route 'b' can never match: route 'a' "
        "(routes[0]) comes first and matches every request it would"
    ]


def test_unused_upstream_and_dormant_canary_block_are_allowed() -> None:
    text = HEAD + textwrap.dedent(
        """\
        routes:
          - name: products
            mode: shadow
            service: catalog
            canary: {weight: 10}
        """
    )
    plan = parse_plan(text, "plan.yaml")
    assert plan.routes[0].canary is not None


def test_yaml_12_booleans() -> None:
    text = HEAD + "proxy: {rewrite_location: true, via: on}\n"
    proxy = parse_plan(text, "plan.yaml").proxy
    assert proxy.rewrite_location is True
    assert proxy.via == "on"


def test_model_validation_enforces_semantics_too() -> None:
    with pytest.raises(ValidationError, match="unknown upstream 'nope'"):
        Plan.model_validate(
            {"default": "nope", "upstreams": {"m": {"url": "http://m"}}}
        )


def test_load_plan_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read plan"):
        load_plan(tmp_path / "absent.yaml")


def test_load_plan_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "routes:\n  - {name: a, mode: cutover}\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert info.value.issues == [
        f"{path}:6: routes[0].service: mode 'cutover' needs a service upstream"
    ]


def test_version_hash_is_stable_short_and_of_the_plan_not_its_text() -> None:
    plan = parse_plan(HEAD, "plan.yaml")
    # Comments, key order, flow or block style: the same plan, the same version.
    rewritten = textwrap.dedent(
        """\
        # the same plan, written differently
        upstreams:
          catalog:
            url: "http://127.0.0.1:8101"
          monolith: {url: "http://127.0.0.1:8000", timeouts: {}}
        default: monolith
        proxy: {via: strangler}  # the default, written out
        """
    )
    again = parse_plan(rewritten, "other.yaml")
    assert version_hash(plan) == version_hash(again) == version_hash(plan)
    assert len(version_hash(plan)) == 12
    changed = parse_plan(HEAD.replace("8101", "8102"), "plan.yaml")
    assert version_hash(changed) != version_hash(plan)


def test_json_schema_describes_every_field() -> None:
    schema = plan_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    json.dumps(schema)  # serialisable
    models = [schema, *schema["$defs"].values()]
    for model in models:
        for name, prop in model.get("properties", {}).items():
            assert prop.get("description"), f"{model.get('title')}.{name}"
    # Durations may be written with units: the schema must accept strings.
    read = schema["$defs"]["Timeouts"]["properties"]["read"]
    assert {"type": "number", "exclusiveMinimum": 0} in read["anyOf"]
    assert any(branch.get("type") == "string" for branch in read["anyOf"])
    # Only JSON Schema keywords: pydantic's own names for bounds must not leak.
    assert '"ge"' not in json.dumps(schema) and '"le"' not in json.dumps(schema)


@pytest.mark.parametrize(
    ("timeouts", "message"),
    [
        (
            "{read: -1}",
            "must be above 0 (got -1): a timeout of 0 is not 'no timeout'; "
            "leave it unset to inherit, or give a long one (e.g. 1h)",
        ),
        ("{read: -1s}", "not a duration: '-1s' (use e.g. 500ms, 2s, 1m)"),
    ],
)
def test_negative_timeouts(timeouts: str, message: str) -> None:
    text = HEAD + "proxy: {}\n" + "routes:\n  - name: a\n"
    text += f"    timeouts: {timeouts}\n"
    assert issues(text) == [f"plan.yaml:8: routes[0].timeouts.read: {message}"]


def test_field_errors_do_not_hide_plan_errors() -> None:
    text = HEAD + textwrap.dedent(
        """\
        routes:
          - {name: a, mode: shadow, service: catalgo, match: {path: /a}}
          - {name: b, match: {path: /b, metods: [GET]}}
        """
    )
    assert issues(text) == [
        "plan.yaml:6: routes[0].service: unknown upstream 'catalgo' (declared: "
        "catalog, monolith)",
        "plan.yaml:7: routes[1].match.metods: unknown field (did you mean 'methods'?)",
    ]


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        pytest.param(
            "  - {name: a, match: {path: /x, methods: ['GE T']}}\n"
            "  - {name: b, match: {path: /x, methods: [POST]}}\n",
            "plan.yaml:6: routes[0].match.methods: not an HTTP method: 'GE T'",
            id="dropped-methods-make-no-unreachable-route",
        ),
        pytest.param(
            "  - {name: a, mode: shadow, service: [catalog]}\n",
            "plan.yaml:6: routes[0].service: Input should be a valid string "
            "(got ['catalog'])",
            id="dropped-service-is-not-missing",
        ),
    ],
)
def test_plan_checks_after_field_errors_give_no_false_alarms(
    routes: str, expected: str
) -> None:
    assert issues(HEAD + "routes:\n" + routes) == [expected]


def test_a_missing_name_hides_nothing_else_of_its_route() -> None:
    # The name is required: a stand-in takes its place for the plan checks.
    assert issues(HEAD + "routes:\n  - {mode: shadow, service: nowhere}\n") == [
        "plan.yaml:6: routes[0].name: required field missing",
        "plan.yaml:6: routes[0].service: unknown upstream 'nowhere' (declared: "
        "catalog, monolith)",
    ]
