"""A simulated card processor with deterministic outcomes.

Test card numbers follow the conventions of real processors' sandboxes:

* ``4000000000000002`` is declined (``card_declined``);
* ``4000000000009995`` is declined for ``insufficient_funds``;
* any other number that passes the Luhn check is authorized and captured.

Numbers that fail the Luhn check never reach the processor: ``normalize_card``
rejects them, and callers turn that into a 400 validation error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

DECLINED_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
_DECLINES = {
    DECLINED_CARD: "card_declined",
    INSUFFICIENT_FUNDS_CARD: "insufficient_funds",
}


class InvalidCardNumber(ValueError):
    """The card number is malformed or fails the Luhn check."""


@dataclass(frozen=True)
class ChargeResult:
    """What the processor answered: authorized with a reference, or declined."""

    authorized: bool
    provider_ref: str
    decline_code: str = ""


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn (mod 10) checksum."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def normalize_card(card_number: str) -> str:
    """The digits of a card number typed with spaces or dashes, validated."""
    digits = "".join(ch for ch in card_number if ch not in " -")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise InvalidCardNumber("Enter a card number of 12 to 19 digits.")
    if not luhn_valid(digits):
        raise InvalidCardNumber("Enter a valid card number.")
    return digits


def authorize(
    card_number: str, amount: Decimal, currency: str, reference: str
) -> ChargeResult:
    """Authorize a charge on a normalized card number; never raises on decline.

    ``reference`` is the merchant's reference (the order number); the provider
    reference is derived from it so that seeded data is reproducible.
    """
    digest = hashlib.sha256(f"{reference}:{amount}:{currency}".encode()).hexdigest()
    provider_ref = f"sim_ch_{digest[:20]}"
    decline = _DECLINES.get(card_number)
    if decline is not None:
        return ChargeResult(False, provider_ref, decline_code=decline)
    return ChargeResult(True, provider_ref)


def capture(provider_ref: str) -> None:
    """Capture an authorized charge. The simulation always succeeds."""


def refund(provider_ref: str) -> str:
    """Refund a captured charge in full; returns the refund's reference."""
    digest = hashlib.sha256(f"refund:{provider_ref}".encode()).hexdigest()
    return f"sim_re_{digest[:20]}"
