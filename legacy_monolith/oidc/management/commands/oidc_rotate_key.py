"""``manage.py oidc_rotate_key``: add a signing key, drop retired ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import keys


class Command(BaseCommand):
    help = (
        "Generate a new RSA signing key for the OpenID Connect provider. It is "
        "published in the JWKS at once and signs after --activate-in seconds "
        "(default OIDC_KEY_PREPUBLISH_SECONDS); keys replaced more than "
        "OIDC_KEY_GRACE_SECONDS ago are deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--activate-in",
            type=float,
            default=float(settings.OIDC_KEY_PREPUBLISH_SECONDS),
            help="Seconds before the new key starts signing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["activate_in"] < 0:
            raise CommandError("--activate-in must not be negative")
        key, removed = keys.rotate(options["activate_in"])
        when = datetime.fromtimestamp(key.active_from, UTC).isoformat()
        if options["verbosity"] > 0:
            self.stdout.write(
                self.style.SUCCESS(
                    f"New key {key.kid} ({key.path}), signs from {when}."
                )
            )
            for path in removed:
                self.stdout.write(f"Removed retired key {path}")
