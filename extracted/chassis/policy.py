"""Who may call which internal endpoint: a deny-by-default policy per service.

The idea of Istio's ``AuthorizationPolicy``, for the internal endpoints of one
service. A credential proves *who* calls (:mod:`.internal`); the policy says
what that caller may do. Nothing is allowed unless a rule allows it::

    # extracted/inventory/policy.yaml
    service: inventory
    rules:
      - from: [relay]                 # client ids (the credential's subject)
        to:
          - {methods: [POST], paths: [/internal/events]}
      - from: [orders]
        to:
          - methods: [POST]
            paths:
              - /internal/inventory/reservations
              - /internal/inventory/reservations/*/release
          - {methods: [GET], paths: [/internal/inventory/reservations]}

Paths are matched segment by segment after the same normalisation as the
internal-path check (repeated slashes folded): ``*`` is one segment, ``**``
any number. Methods are upper-cased; ``GET`` also allows ``HEAD``.

The file is operator input: it is read with limits (64 KiB, no aliases) and a
mistake is refused with ``file:line`` and the field, as plans are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Policy", "PolicyError", "Rule", "load_policy", "parse_policy"]

MAX_BYTES = 64 * 1024
_SLASHES = re.compile(r"/+")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_METHOD = re.compile(r"^[A-Z]+$")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Rule:
    callers: frozenset[str]
    methods: frozenset[str]
    paths: tuple[re.Pattern[str], ...]
    line: int

    def allows(self, caller: str, method: str, path: str) -> bool:
        if caller not in self.callers and "*" not in self.callers:
            return False
        if method not in self.methods and not (
            method == "HEAD" and "GET" in self.methods
        ):
            return False
        return any(p.fullmatch(path) for p in self.paths)


@dataclass(frozen=True, slots=True)
class Policy:
    service: str
    rules: tuple[Rule, ...]
    source: str

    def allows(self, caller: str, method: str, path: str) -> bool:
        """Whether ``caller`` may send ``method path`` (deny by default)."""
        normal = _SLASHES.sub("/", path)
        return any(rule.allows(caller, method.upper(), normal) for rule in self.rules)

    def rule_for(self, caller: str, method: str, path: str) -> Rule | None:
        normal = _SLASHES.sub("/", path)
        for rule in self.rules:
            if rule.allows(caller, method.upper(), normal):
                return rule
        return None


def _pattern(path: str) -> re.Pattern[str]:
    out = ""
    segments = path.strip("/").split("/")
    for index, segment in enumerate(segments):
        if segment == "**":
            out += "(?:/.*)?" if index == len(segments) - 1 else "(?:/[^/]+)*"
        elif segment == "*":
            out += "/[^/]+"
        else:
            out += "/" + re.escape(segment)
    if path.endswith("/") and path != "/":
        out += "/"
    return re.compile(out or "/")


class _NoAliases(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: aliases are not allowed"
            )
        return super().compose_node(parent, index)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """A :class:`Policy` from YAML text; :class:`PolicyError` names the line."""
    if len(text.encode()) > MAX_BYTES:
        raise PolicyError(f"{source}: larger than {MAX_BYTES // 1024} KiB")
    try:
        root = yaml.compose(text, Loader=_NoAliases)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None

    def fail(node: Any, field: str, why: str) -> PolicyError:
        line = node.start_mark.line + 1 if node is not None else 1
        return PolicyError(f"{source}:{line}: {field}: {why}")

    if not isinstance(root, yaml.MappingNode):
        raise fail(root, "(document)", "must be a mapping with 'service' and 'rules'")
    top = _mapping(root, "(document)", {"service", "rules"}, fail)
    service = _scalar(top.get("service"), "service", fail, root)
    if not _NAME.match(service):
        raise fail(top.get("service"), "service", f"not a service name: {service!r}")
    rules_node = top.get("rules")
    if not isinstance(rules_node, yaml.SequenceNode):
        raise fail(rules_node or root, "rules", "must be a list of rules")
    rules = []
    for index, rule_node in enumerate(rules_node.value):
        where = f"rules[{index}]"
        if not isinstance(rule_node, yaml.MappingNode):
            raise fail(rule_node, where, "must be a mapping with 'from' and 'to'")
        fields = _mapping(rule_node, where, {"from", "to", "name"}, fail)
        callers = _strings(fields.get("from"), f"{where}.from", fail, rule_node)
        for caller in callers:
            if caller != "*" and not _NAME.match(caller):
                raise fail(
                    fields["from"], f"{where}.from", f"not a client id: {caller!r}"
                )
        to_node = fields.get("to")
        if not isinstance(to_node, yaml.SequenceNode) or not to_node.value:
            raise fail(to_node or rule_node, f"{where}.to", "must be a non-empty list")
        for t_index, target in enumerate(to_node.value):
            twhere = f"{where}.to[{t_index}]"
            if not isinstance(target, yaml.MappingNode):
                raise fail(
                    target, twhere, "must be a mapping with 'methods' and 'paths'"
                )
            tfields = _mapping(target, twhere, {"methods", "paths"}, fail)
            methods = [
                m.upper()
                for m in _strings(
                    tfields.get("methods"), f"{twhere}.methods", fail, target
                )
            ]
            for method in methods:
                if not _METHOD.match(method):
                    raise fail(
                        tfields["methods"],
                        f"{twhere}.methods",
                        f"not a method: {method!r}",
                    )
            paths = _strings(tfields.get("paths"), f"{twhere}.paths", fail, target)
            for path in paths:
                if not path.startswith("/internal/"):
                    raise fail(
                        tfields["paths"],
                        f"{twhere}.paths",
                        f"{path!r} is not an internal path (/internal/...): public "
                        "paths are the proxy's to authorise",
                    )
            rules.append(
                Rule(
                    callers=frozenset(callers),
                    methods=frozenset(methods),
                    paths=tuple(_pattern(p) for p in paths),
                    line=target.start_mark.line + 1,
                )
            )
    return Policy(service=service, rules=tuple(rules), source=source)


def load_policy(path: str | Path) -> Policy:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{file}: cannot read the policy: {exc}") from None
    return parse_policy(text, str(file))


def _mapping(node: Any, where: str, allowed: set[str], fail: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise fail(key, where, f"unknown field {name!r} (known: {known})")
        out[name] = value
    return out


def _scalar(node: Any, field: str, fail: Any, parent: Any) -> str:
    if not isinstance(node, yaml.ScalarNode) or not node.value:
        raise fail(node or parent, field, "is required (a string)")
    return str(node.value)


def _strings(node: Any, field: str, fail: Any, parent: Any) -> list[str]:
    if node is None:
        raise fail(parent, field, "is required (a list of strings)")
    items: Iterable[Any] = node.value if isinstance(node, yaml.SequenceNode) else [node]
    values = []
    for item in items:
        if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
            raise fail(item, field, "must be a list of non-empty strings")
        values.append(str(item.value).strip())
    if not values:
        raise fail(node, field, "must not be empty")
    return values
