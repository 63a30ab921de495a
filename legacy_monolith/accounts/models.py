"""The shop's user model: customers, and staff (``is_staff``) who run the shop."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A customer or a staff member.

    A custom user model from day one, as Django recommends, even though it adds
    nothing yet: swapping it in later needs a painful migration.
    """

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        ordering = ["id"]
