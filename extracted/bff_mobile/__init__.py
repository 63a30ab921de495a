"""The mobile Backend for Frontend: light responses for a phone, one call each.

See :mod:`.app` and docs/reference/bff-mobile.md.
"""
