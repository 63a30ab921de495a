"""The hasher of OIDC client secrets (DOT's ``CLIENT_SECRET_HASHER``).

Client secrets are generated, 256 random bits each (``oidc_clients``): no
dictionary holds them, so key stretching, which is what makes password hashes
slow, protects nothing. One salted PBKDF2-SHA256 round keeps them unreadable
in the database and makes the token endpoint cheap, instead of a second or
so of CPU per client-credentials request that anyone may cause.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class ClientSecretHasher(PBKDF2PasswordHasher):
    algorithm = "client_secret_pbkdf2_sha256"
    iterations = 1
