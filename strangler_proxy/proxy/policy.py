"""The zero-trust policy a sidecar enforces: who may call which internal path.

The format is the one services read for themselves (documented in
``docs/reference/zero-trust.md``, one file per service): one format, two
readers, the service's and this one, for ``strangler sidecar --policy``. The
toolkit imports nothing of the services, so it reads the file itself::

    service: stock
    rules:
      - name: checkout reserves stock             # optional
        from: [checkout]                          # client ids, `*` for any
        to:
          - methods: [POST]                       # GET also allows HEAD
            paths:
              - /internal/stock/reservations
              - /internal/stock/reservations/*/release

Nothing is allowed unless a rule allows it. Paths are internal paths
(``/internal/...``), matched segment by segment on the normalised path: ``*``
is one segment, ``**`` any number (a wildcard only as a whole segment). The
caller is the client id of a verified provider token (``client_id``, else
``azp``, else ``sub``) carrying the ``internal`` scope.

The file is operator input, read with limits: at most 64 KiB, no aliases, and
every mistake is a :class:`~strangler_proxy.exceptions.PlanError` whose issues
read ``FILE:LINE: FIELD: MESSAGE``, as for plans.

:class:`PolicyGuard` applies a policy file to requests: it re-reads the file
when it changes (looked at no more than once per second, on a request), and an
edit that does not load is logged while the running policy stays.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from strangler_proxy.exceptions import PlanError, ProxyError
from strangler_proxy.plan import Plan
from strangler_proxy.plan.load import parse_document
from strangler_proxy.plan.model import FrozenModel

from .identity import Caller

__all__ = [
    "MAX_POLICY_BYTES",
    "POLICY_VARIABLE",
    "SERVICE_SCOPE",
    "Grant",
    "Policy",
    "PolicyGuard",
    "is_internal",
    "load_policy",
    "parse_policy",
    "sidecar_guard",
]

logger = logging.getLogger("strangler.proxy")

MAX_POLICY_BYTES = 64 * 1024
POLICY_VARIABLE = "STRANGLER_SIDECAR_POLICY"
"""The policy file a ``role: sidecar`` proxy enforces (``strangler sidecar
--policy`` sets it)."""
SERVICE_SCOPE = "internal"
"""The scope that makes a provider token a service credential."""
RECHECK_INTERVAL = 1.0
_SLASHES = re.compile("/{2,}")
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_METHOD = re.compile(r"^[A-Z]+$")
_INTERNAL = "/internal/"


def is_internal(path: str) -> bool:
    """Whether ``path`` is an internal path, however its case is written (a
    service that routes without case must not be reached around the policy)."""
    folded = _SLASHES.sub("/", path).lower()
    return folded == "/internal" or folded.startswith(_INTERNAL)


def _one_or_many(value: Any) -> Any:
    # `from: relay` is `from: [relay]`, as the services read it. Emptiness is
    # checked here, before the items: pydantic's min_length would count only
    # the items that validate, and report a list with one broken item empty.
    items = [value] if isinstance(value, str | int) else value
    if not isinstance(items, list):
        return value
    if not items:
        raise ValueError("must not be empty")
    return tuple(
        str(v).strip() if isinstance(v, str | int) and not isinstance(v, bool) else v
        for v in items
    )


def _non_empty(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise ValueError("must not be empty")
    return value


def _no_blank(value: tuple[str, ...]) -> tuple[str, ...]:
    if any(not v for v in value):
        raise ValueError("must be non-empty strings")
    return value


Strings = Annotated[
    tuple[str, ...], BeforeValidator(_one_or_many), AfterValidator(_no_blank)
]


class _Target(FrozenModel):
    methods: Strings
    paths: Strings

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(m.upper() for m in value)
        for method in upper:
            if not _METHOD.match(method):
                raise ValueError(f"not a method: {method!r}")
        return upper

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith(_INTERNAL):
                raise ValueError(
                    f"{path!r} is not an internal path (/internal/...): public "
                    "paths are the edge proxy's to authorise"
                )
            if any(s in ("", ".", "..") for s in path[1:].rstrip("/").split("/")):
                raise ValueError(
                    f"{path!r} has an empty, '.' or '..' segment: it would never "
                    "match a normalised path"
                )
        return value


class _Rule(FrozenModel):
    name: str | None = None
    from_: Strings = Field(alias="from")
    to: Annotated[tuple[_Target, ...], BeforeValidator(_non_empty)]

    @field_validator("from_")
    @classmethod
    def _callers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for caller in value:
            if caller != "*" and not _CLIENT.match(caller):
                raise ValueError(f"not a client id: {caller!r}")
        return value


class _Document(FrozenModel):
    service: str
    rules: tuple[_Rule, ...]

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if not _CLIENT.match(value):
            raise ValueError(f"not a service name: {value!r}")
        return value


def _compile(path: str) -> re.Pattern[str]:
    segments = path[1:].rstrip("/").split("/")
    last = len(segments) - 1
    pattern = ""
    for index, segment in enumerate(segments):
        if segment == "**":
            # Last: anything below (or nothing); inside: whole segments only.
            pattern += "(?:/.*)?" if index == last else "(?:/[^/]+)*"
        elif segment == "*":
            pattern += "/[^/]+"
        else:
            pattern += "/" + re.escape(segment)
    if path.endswith("/"):
        pattern += "/"
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class Grant:
    """One ``to`` entry of one rule: these callers may send these requests."""

    rule: str
    """The rule's ``name``, else ``rules[N]``."""
    callers: frozenset[str]
    methods: frozenset[str]
    paths: tuple[re.Pattern[str], ...]

    def allows(self, caller: str, method: str, path: str) -> bool:
        """Whether this grant covers ``(caller, method, path)`` (normalised)."""
        if caller not in self.callers and "*" not in self.callers:
            return False
        if method not in self.methods and not (
            method == "HEAD" and "GET" in self.methods
        ):
            return False
        return any(p.fullmatch(path) for p in self.paths)


@dataclass(frozen=True, slots=True)
class Policy:
    """A service's policy: deny by default, a grant per ``to`` entry."""

    service: str
    grants: tuple[Grant, ...]
    source: str

    def grant_for(self, caller: str, method: str, path: str) -> Grant | None:
        """The first grant allowing ``caller`` to send ``method path``; None:
        refused."""
        normal = _SLASHES.sub("/", path)
        upper = method.upper()
        for grant in self.grants:
            if grant.allows(caller, upper, normal):
                return grant
        return None

    def allows(self, caller: str, method: str, path: str) -> bool:
        """Whether ``caller`` may send ``method path``."""
        return self.grant_for(caller, method, path) is not None


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def _structure_problem(text: str, source: str) -> str | None:
    """Aliases, or a document that is not one mapping, named by line; None
    when the YAML is fine so far (its syntax errors are reported later)."""
    documents = 0
    root_seen = False
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            where = f"{source}:{_line(event)}: (policy)"
            if isinstance(event, yaml.AliasEvent):
                return f"{where}: aliases are not allowed"
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    return f"{where}: one YAML document only"
            elif isinstance(event, yaml.NodeEvent) and not root_seen:
                root_seen = True
                if not isinstance(event, yaml.MappingStartEvent):
                    return f"{where}: must be a mapping with 'service' and 'rules'"
    except yaml.YAMLError:
        return None
    if not root_seen:
        return f"{source}:1: (policy): empty; it needs 'service' and 'rules'"
    return None


def _fail(issues: list[str]) -> PlanError:
    noun = "problem" if len(issues) == 1 else "problems"
    return PlanError(
        f"invalid policy ({len(issues)} {noun}):\n" + "\n".join(issues), issues
    )


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """A :class:`Policy` from YAML ``text``; :class:`PlanError` otherwise."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise _fail([f"{source}: larger than {MAX_POLICY_BYTES // 1024} KiB"])
    problem = _structure_problem(text, source)
    if problem is not None:
        raise _fail([problem])
    try:
        document = parse_document(text, source, _Document)
    except PlanError as exc:
        raise _fail(exc.issues) from None
    grants = tuple(
        Grant(
            rule=rule.name or f"rules[{index}]",
            callers=frozenset(rule.from_),
            methods=frozenset(target.methods),
            paths=tuple(_compile(p) for p in target.paths),
        )
        for index, rule in enumerate(document.rules)
        for target in rule.to
    )
    return Policy(document.service, grants, source)


def load_policy(path: Path) -> Policy:
    """The policy in the file at ``path`` (read no further than the limit)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise _fail([f"{path}: cannot read the policy: {exc.strerror}"]) from None
    if len(data) > MAX_POLICY_BYTES:
        raise _fail([f"{path}: larger than {MAX_POLICY_BYTES // 1024} KiB"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail([f"{path}: not UTF-8: {exc.reason}"]) from None
    return parse_policy(text, str(path))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class PolicyGuard:
    """A sidecar's policy file, applied to every internal request."""

    def __init__(self, path: Path, service: str) -> None:
        self.path = path
        self.service = service
        self._stamp = _stamp(path)
        self.policy = self._load()
        self._checked = time.monotonic()

    def _load(self) -> Policy:
        policy = load_policy(self.path)
        if policy.service != self.service:
            raise _fail(
                [
                    f"{self.path}: service: the policy is for {policy.service!r}, "
                    f"this sidecar is in front of {self.service!r}"
                ]
            )
        return policy

    def current(self) -> Policy:
        """The policy in force; the file is looked at again once per second."""
        now = time.monotonic()
        if now - self._checked < RECHECK_INTERVAL:
            return self.policy
        self._checked = now
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.policy = self._load()
            except PlanError as exc:
                logger.error(
                    "policy reload rejected, the running policy stays",
                    extra={"policy": str(self.path), "errors": exc.issues},
                )
            else:
                logger.info("policy reloaded", extra={"policy": str(self.path)})
        return self.policy

    def check(
        self, caller: Caller | None, method: str, path: str, *, close: bool
    ) -> None:
        """Raise the 401 or 403 :class:`ProxyError` for an internal request the
        policy refuses; return for one it allows, or a path not internal."""
        if not is_internal(path):
            return
        if caller is None:
            raise ProxyError(
                401,
                "not_authenticated",
                "internal endpoint: send Authorization: Bearer <credential>",
                kind="internal_without_credential",
                headers=((b"www-authenticate", b'Bearer realm="internal"'),),
                close=close,
            )
        policy = self.current()
        client = caller.client
        if client is None or SERVICE_SCOPE not in caller.scopes:
            raise ProxyError(
                403,
                "not_a_service_credential",
                f"the token is not a service credential (a client id and the "
                f"{SERVICE_SCOPE!r} scope) for {method} {path} "
                f"(policy of {policy.service})",
                kind="not_allowed_by_policy",
                close=close,
            )
        if policy.grant_for(client, method, path) is None:
            raise ProxyError(
                403,
                "not_allowed_by_policy",
                f"{client} may not {method} {path} (policy of {policy.service})",
                kind="not_allowed_by_policy",
                close=close,
            )


def sidecar_guard(
    plan: Plan, previous: PolicyGuard | None = None
) -> PolicyGuard | None:
    """The guard of a ``role: sidecar`` plan when :data:`POLICY_VARIABLE`
    names a policy file; None otherwise (an edge proxy never forwards internal
    paths). ``previous``, the running guard, is kept when it reads the same
    file: a plan reload neither re-reads nor forgets the policy.

    Raises :class:`PlanError` when the file does not load or names another
    service, or the plan verifies no bearer tokens (``identity.oidc``), whose
    audience is the service the policy must be of.
    """
    named = os.environ.get(POLICY_VARIABLE, "").strip()
    if plan.proxy.role != "sidecar" or not named:
        return None
    oidc = plan.identity.oidc
    if oidc is None:
        raise PlanError(
            f"{POLICY_VARIABLE}: a sidecar's policy needs identity.oidc: the "
            "callers it names are the client ids of verified provider tokens"
        )
    path = Path(named)
    if previous is not None and (previous.path, previous.service) == (
        path,
        oidc.audience,
    ):
        return previous
    return PolicyGuard(path, oidc.audience)
