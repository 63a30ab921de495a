"""What DOT's models do not hold: scopes and the audiences of each client."""

from __future__ import annotations

from django.db import models
from oauth2_provider.models import Application


class Scope(models.Model):
    """A scope clients may ask for; granting it adds its audiences to the token."""

    name = models.CharField(max_length=100, primary_key=True)
    description = models.CharField(max_length=300, blank=True)
    audience = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.name


class ClientPolicy(models.Model):
    """Per client: the scopes it may be granted and the audiences of its tokens."""

    application = models.OneToOneField(
        Application, on_delete=models.CASCADE, related_name="policy"
    )
    scopes = models.JSONField(default=list, blank=True)
    default_scopes = models.JSONField(default=list, blank=True)
    audience = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"policy of {self.application.client_id}"
