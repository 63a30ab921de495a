"""Tests of the bundled legacy monolith (Django + DRF)."""
