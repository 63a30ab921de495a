"""No component decides trust from a network address (DESIGN.md, "Trust").

A grep over the code of the monolith, the services and the toolkit: every
place that reads the peer's address (``scope["client"]``, ``request.client``,
``REMOTE_ADDR``, ``peername``) or asks whether an address is loopback must be
in the allow-list below, with what it is used for; none of them is an
authentication or authorisation module. A new one fails this test until
someone looks at it and says why it is not a trust decision.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("legacy_monolith", "extracted", "strangler_proxy")

PEER_SOURCES = re.compile(
    r"""scope\s*\[\s*["']client["']\s*\]"""
    r"""|scope\.get\(\s*["']client["']"""
    r"""|\brequest\.client\b"""
    r"""|REMOTE_ADDR"""
    r"""|peername"""
    r"""|\bis_loopback\w*\s*\("""
    r"""|\.is_loopback\b"""
)

# (file, the line's code, stripped) -> why it is not a trust decision.
ALLOWED: dict[tuple[str, str], str] = {
    (
        "strangler_proxy/proxy/forwarding.py",
        'client = scope.get("client")',
    ): "the peer address for the access log, X-Forwarded-For and canary "
    "stickiness (client_ip); never for authentication",
    (
        "legacy_monolith/oidc/tokens.py",
        "client = request.client",
    ): "oauthlib's request.client is the OAuth client (Application), not a peer",
    (
        "strangler_proxy/proxy/settings.py",
        'return ipaddress.ip_address(host.strip("[]")).is_loopback',
    ): "whether the admin API *listens* on loopback (a bind address in the "
    "settings), which only decides whether an admin token is required",
    (
        "strangler_proxy/proxy/settings.py",
        "def is_loopback(host: str) -> bool:",
    ): "the bind-address helper above",
    (
        "strangler_proxy/proxy/settings.py",
        "if not is_loopback(self.admin_host):",
    ): "the admin API's bind address: exposing it requires a token",
    (
        "strangler_proxy/proxy/settings.py",
        "return not is_loopback(self.admin_host)",
    ): "the admin API's bind address (reported as admin_exposed)",
    (
        "strangler_proxy/devstack/traffic.py",
        "def is_loopback_url(url: str) -> bool:",
    ): "the load generator's *target* URL: refusing to load a remote host",
    (
        "strangler_proxy/devstack/traffic.py",
        "return ip_address(host).is_loopback",
    ): "the load generator's target URL",
    (
        "strangler_proxy/cli/traffic.py",
        "if not allow_remote and not is_loopback_url(url):",
    ): "the load generator's target URL",
}

# Modules that decide who may call: none may read an address at all.
TRUST_MODULES = (
    "extracted/chassis/internal.py",
    "extracted/chassis/servicetokens.py",
    "extracted/chassis/identity.py",
    "extracted/chassis/policy.py",
    "legacy_monolith/outbox/internal.py",
    "legacy_monolith/outbox/ingest.py",
    "strangler_proxy/sync/credentials.py",
    "strangler_proxy/transport/credentials.py",
    "strangler_proxy/proxy/identity.py",
    "strangler_proxy/proxy/jwks.py",
    "strangler_proxy/proxy/policy.py",
    "strangler_proxy/control/invariants.py",
    "legacy_monolith/orders/service_identity.py",
    "legacy_monolith/oidc/authentication.py",
)


def code_lines() -> list[tuple[str, int, str]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative:
                continue
            in_doc = False
            for number, line in enumerate(path.read_text().splitlines(), 1):
                stripped = line.strip()
                # Skip docstrings and comments: only code decides.
                quotes = stripped.count('"""') + stripped.count("'''")
                if in_doc or quotes:
                    if quotes % 2 == 1:
                        in_doc = not in_doc
                    continue
                if stripped.startswith("#"):
                    continue
                out.append((relative, number, stripped))
    return out


def test_every_read_of_a_peer_address_is_allow_listed() -> None:
    found = [
        (path, number, line)
        for path, number, line in code_lines()
        if PEER_SOURCES.search(line)
    ]
    unexplained = [
        f"{path}:{number}: {line}"
        for path, number, line in found
        if (path, line) not in ALLOWED
    ]
    assert not unexplained, (
        "reads of a peer address (or loopback checks) that nobody has explained; "
        "trust must come from a credential, never from an address:\n"
        + "\n".join(unexplained)
    )
    # The allow-list stays honest: every entry still exists.
    seen = {(path, line) for path, _, line in found}
    assert set(ALLOWED) <= seen, set(ALLOWED) - seen


def test_the_trust_modules_never_look_at_an_address() -> None:
    address = re.compile(
        PEER_SOURCES.pattern
        + r"""|client_ip|X-Forwarded-For|x-forwarded-for|X-Real-IP|ip_address\("""
    )
    offending = [
        f"{path}:{number}: {line}"
        for path, number, line in code_lines()
        if path in TRUST_MODULES and address.search(line)
    ]
    assert not offending, "\n".join(offending)
    for module in TRUST_MODULES:
        assert (ROOT / module).exists(), module


def test_client_ip_flows_only_to_logs_forwarding_and_stickiness() -> None:
    allowed_modules = {
        "strangler_proxy/proxy/forwarding.py",  # set from the peer, passed on
        "strangler_proxy/proxy/records.py",  # the access-log record
        "strangler_proxy/observe/accesslog.py",  # written to the access log
        "strangler_proxy/proxy/headers.py",  # X-Forwarded-For / Forwarded
        "strangler_proxy/proxy/shadow.py",  # the mirror's X-Forwarded-For
        "strangler_proxy/proxy/routing.py",  # canary stickiness by client IP
        "strangler_proxy/cli/plan.py",  # `plan explain --client-ip`: routing
    }
    users = {
        path for path, _, line in code_lines() if re.search(r"\bclient_ip\b", line)
    }
    assert users <= allowed_modules, users - allowed_modules
