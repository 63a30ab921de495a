"""How long does a big plan take to validate?

``python bench/plan_validate.py`` generates plans of 1,000, 2,000 and 5,000
routes (``--routes`` for others), shaped like a real API: per resource a
detail route, a write route, a route for one header, one for a host, and a
catch-all, most specific first, so every later route has earlier routes that
share its path prefix. For each it prints the plan size, the time
``parse_plan`` takes (YAML, fields, whole-plan checks), the share of it the
unreachable-route search takes, and how many pairs of routes that search
compared. ``--pairwise`` also times the pair-by-pair search the index
replaced (quadratic: minutes at 5,000 routes).

No threshold is asserted: this prints figures for
``docs/reference/plan.md`` and for humans.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the repository's package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strangler_proxy.plan import Match, Plan, parse_plan
from strangler_proxy.plan.checks import match_covers, unreachable_routes

__all__ = ["plan_text"]

_HEAD = """\
version: 1
name: bench-{routes}
default: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:8000"}}
  service: {{url: "http://127.0.0.1:8101"}}
routes:
"""

# Five routes per resource, the narrowest first.
_RESOURCE = """\
  - name: r{n}-beta
    match: {{path: /api/v{v}/res{n}/**, headers: {{x-beta: "1"}}}}
    mode: shadow
    service: service
  - name: r{n}-detail
    match: {{path: /api/v{v}/res{n}/*, methods: [GET]}}
    mode: canary
    service: service
    canary: {{weight: 10}}
  - name: r{n}-items
    match: {{path: /api/v{v}/res{n}/*/items, methods: [POST, PUT]}}
    mode: cutover
    service: service
    fallback: legacy
  - name: r{n}-tenant
    match: {{path: /api/v{v}/res{n}/**, host: "t{n}.example.com"}}
  - name: r{n}
    match: {{path: /api/v{v}/res{n}/**, methods: [GET, HEAD]}}
    timeouts: {{read: 5s}}
"""


def plan_text(routes: int) -> str:
    """A valid plan of ``routes`` routes (a multiple of five)."""
    body = "".join(_RESOURCE.format(n=n, v=n % 3) for n in range(routes // 5))
    return _HEAD.format(routes=routes) + body


def _pairwise(plan: Plan) -> int:
    """The search the index replaced: every route against every earlier one."""
    hidden = 0
    for later, route in enumerate(plan.routes):
        for earlier in range(later):
            if match_covers(plan.routes[earlier].match, route.match):
                hidden += 1
                break
    return hidden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument(
        "--pairwise", action="store_true", help="also time the pairwise search"
    )
    args = parser.parse_args(argv)
    print(f"{'routes':>7} {'KiB':>6} {'validate':>9} {'reach':>7} {'compared':>9}")
    for routes in args.routes:
        text = plan_text(routes)
        started = time.perf_counter()
        plan = parse_plan(text, f"bench-{routes}.yaml")
        validate = time.perf_counter() - started

        compared = 0

        def counting(first: Match, second: Match) -> bool:
            nonlocal compared
            compared += 1
            return match_covers(first, second)

        started = time.perf_counter()
        issues = unreachable_routes(plan.routes, covers=counting)
        reach = time.perf_counter() - started
        assert not issues, issues[:3]
        line = (
            f"{routes:>7} {len(text) / 1024:>6.0f} {validate:>8.2f}s "
            f"{reach:>6.2f}s {compared:>9,}"
        )
        if args.pairwise:
            started = time.perf_counter()
            _pairwise(plan)
            line += f"   pairwise {time.perf_counter() - started:.1f}s"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
