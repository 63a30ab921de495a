"""Human-readable order numbers such as ``ORD-7KQ2-M9XD``.

Random rather than sequential, so a number reveals nothing about sales volume
and cannot be guessed from a neighbour's. The alphabet leaves out 0/O and 1/I,
which customers misread on the phone.
"""

from __future__ import annotations

import random
import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PATTERN = r"ORD-[A-Z0-9]{4}-[A-Z0-9]{4}"


def new_order_number(rng: random.Random | None = None) -> str:
    """A fresh order number; from ``rng`` when given (seeding), else secure."""
    if rng is None:
        chars = [secrets.choice(ALPHABET) for _ in range(8)]
    else:
        chars = [rng.choice(ALPHABET) for _ in range(8)]
    code = "".join(chars)
    return f"ORD-{code[:4]}-{code[4:]}"
