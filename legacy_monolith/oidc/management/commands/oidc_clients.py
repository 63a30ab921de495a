"""``manage.py oidc_clients --config FILE``: create or update the OIDC clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import clients


class Command(BaseCommand):
    help = (
        "Create or update the OpenID Connect clients and scopes declared in a "
        "YAML file (default legacy_monolith/oidc_clients.yaml). Confidential "
        "clients' secrets are read from, or generated into, --secrets-dir."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--config",
            type=Path,
            default=Path(settings.BASE_DIR) / "legacy_monolith" / "oidc_clients.yaml",
            help="The clients file.",
        )
        parser.add_argument(
            "--secrets-dir",
            type=Path,
            default=Path(settings.OIDC_SECRETS_DIR),
            help="Directory of <client>.secret files (default: OIDC_SECRETS_DIR).",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Delete clients and scopes the file does not declare.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = clients.load(options["config"])
        except (OSError, clients.ClientsFileError) as exc:
            raise CommandError(str(exc)) from exc
        applied = clients.apply(config, options["secrets_dir"], prune=options["prune"])
        if options["verbosity"] > 0:
            self.stdout.write(
                self.style.SUCCESS(
                    f"OIDC clients: {len(applied.created)} created, "
                    f"{len(applied.updated)} updated, {len(applied.deleted)} deleted; "
                    f"{len(config['scopes'])} scopes."
                )
            )
            for path in applied.secrets_written:
                self.stdout.write(f"New client secret: {path}")
