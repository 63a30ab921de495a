"""WSGI entry point, for gunicorn and other WSGI servers."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from legacy_monolith.core.tracing import setup as setup_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_monolith.settings")
setup_tracing()  # before Django loads its middleware; nothing when tracing is off

application = get_wsgi_application()
