"""Temporary nginx configurations: a static upstream and a reverse proxy.

Each nginx runs in the foreground (``daemon off``) with its own prefix folder,
one worker and no access log, so the bench can measure and stop it like any
other child process.
"""

from __future__ import annotations

import os
from pathlib import Path

_COMMON = """\
daemon off;
master_process on;
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{body}
}}
"""

_STATIC = """\
    server {{
        listen 127.0.0.1:{port} reuseport backlog=1024;
        root {prefix}/www;
        default_type application/json;
        location / {{ try_files /body.json =404; }}
    }}
"""

_PROXY = """\
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=1024;
        client_max_body_size 0;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
"""


_MIRROR = """\
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    upstream candidate {{
        server 127.0.0.1:{mirror_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=1024;
        client_max_body_size 0;
        location / {{
            mirror /_mirror;
            mirror_request_body on;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
        location = /_mirror {{
            internal;
            proxy_pass http://candidate$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
"""


def _write(prefix: Path, body: str) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    # As root, workers would drop to "nobody" and could not read a 0700 tmpdir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(_COMMON.format(prefix=prefix, body=body, user=user))
    return conf


def static_config(prefix: Path, port: int, body: bytes) -> Path:
    """nginx serving ``body`` for every path, with keep-alive."""
    www = prefix / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "body.json").write_bytes(body)
    return _write(prefix, _STATIC.format(prefix=prefix, port=port))


def proxy_config(prefix: Path, port: int, upstream_port: int) -> Path:
    """nginx as a keep-alive reverse proxy to ``127.0.0.1:upstream_port``."""
    return _write(prefix, _PROXY.format(port=port, upstream_port=upstream_port))


def command(conf: Path) -> list[str]:
    """The argv that runs nginx in the foreground with ``conf``."""
    return ["nginx", "-p", str(conf.parent), "-c", str(conf), "-e", "stderr"]


def mirror_config(
    prefix: Path, port: int, upstream_port: int, mirror_port: int
) -> Path:
    """nginx proxying to ``upstream_port`` and mirroring every request (body
    included) to ``mirror_port``: the ``mirror`` directive, nginx's shadowing."""
    return _write(
        prefix,
        _MIRROR.format(port=port, upstream_port=upstream_port, mirror_port=mirror_port),
    )
