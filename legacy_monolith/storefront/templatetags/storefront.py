"""Template tags of the storefront: ``{% load storefront %}``."""

from __future__ import annotations

from typing import Any

from django import template

from ..cart import Cart

register = template.Library()


@register.simple_tag(takes_context=True)
def cart_count(context: dict[str, Any]) -> int:
    """Units in the session cart, for the navigation bar."""
    request = context.get("request")
    session = getattr(request, "session", None)
    return len(Cart(session)) if session is not None else 0
