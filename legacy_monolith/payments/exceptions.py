"""Payment errors that reach API clients.

::

    APIException (DRF)
    ├── PaymentDeclined      402 card_declined | insufficient_funds
    └── PaymentNotRefundable 409 invalid_state
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException, ErrorDetail

_DECLINE_MESSAGES = {
    "card_declined": "Payment declined.",
    "insufficient_funds": "Payment declined: insufficient funds.",
}


class PaymentDeclined(APIException):
    """The provider declined the card.

    402 Payment Required, as Stripe answers a declined charge: the request was
    well formed, the client may retry with another card.
    """

    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_detail = "Payment declined."
    default_code = "card_declined"

    def __init__(self, decline_code: str = "card_declined", order: str = "") -> None:
        message = _DECLINE_MESSAGES.get(decline_code, str(self.default_detail))
        super().__init__(detail=message, code=decline_code)
        self.message = message
        self.decline_code = decline_code
        self.order_number = order
        # A dict detail is rendered as-is by DRF's exception handler: the body
        # is {"detail", "code"} plus the failed order's number, if any.
        body = {
            "detail": ErrorDetail(message, decline_code),
            "code": ErrorDetail(decline_code, decline_code),
        }
        if order:
            body["order"] = ErrorDetail(order, decline_code)
        self.detail = body


class PaymentNotRefundable(APIException):
    """Only a captured payment can be refunded."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Only a captured payment can be refunded."
    default_code = "invalid_state"

    def __init__(self) -> None:
        super().__init__()
        self.detail = {
            "detail": ErrorDetail(str(self.default_detail), self.default_code),
            "code": ErrorDetail(self.default_code, self.default_code),
        }
