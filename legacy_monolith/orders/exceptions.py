"""Order errors that reach API clients.

::

    APIException (DRF)
    └── InvalidOrderState  409 invalid_state

The body carries a machine-readable ``code`` next to ``detail``, as
``payments.exceptions.PaymentDeclined`` does, so clients need not parse text.
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException, ErrorDetail


class InvalidOrderState(APIException):
    """The order's status does not allow the operation (e.g. cancel twice)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The order's status does not allow this operation."
    default_code = "invalid_state"

    def __init__(self, detail: str | None = None) -> None:
        message = detail or str(self.default_detail)
        super().__init__(detail=message, code=self.default_code)
        self.message = message
        # A dict detail is rendered as-is by DRF's exception handler.
        self.detail = {
            "detail": ErrorDetail(message, self.default_code),
            "code": ErrorDetail(self.default_code, self.default_code),
        }
