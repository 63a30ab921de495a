"""The monolith as OpenID Connect provider (django-oauth-toolkit, ``/o/``).

- ``keys``: the RSA signing keys, a directory of PEM files; the newest active
  key signs, older ones stay published in the JWKS for a grace period.
- ``tokens``: access tokens as signed JWTs (RFC 9068 profile).
- ``scopes`` and ``models``: scopes and per-client audiences, declared in
  ``legacy_monolith/oidc_clients.yaml`` and written by ``manage.py oidc_clients``.
- ``validators``: DOT's validator, signing ID tokens with the key ring.
- ``views`` and ``urls``: DOT's endpoints, with a JWKS view of the key ring.

See docs/reference/oidc-provider.md.
"""
