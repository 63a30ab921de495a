"""Liveness and readiness endpoints, as every strangler process has them.

``/health`` answers as long as the process serves requests; ``/ready`` also
checks that the database answers, so a supervisor or load balancer only sends
traffic to a monolith that can use it.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 ``{"status": "ok"}``."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database answers a query, else 503."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("readiness check: database unreachable", exc_info=True)
        return JsonResponse(
            {"status": "unavailable", "checks": {"database": "error"}}, status=503
        )
    return JsonResponse({"status": "ready", "checks": {"database": "ok"}})
