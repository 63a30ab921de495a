"""Forms of the storefront: cart changes and the checkout card form."""

from __future__ import annotations

from django import forms

from ..payments.provider import InvalidCardNumber, normalize_card
from .cart import MAX_QUANTITY


class AddToCartForm(forms.Form):
    """``product`` id and ``quantity`` to add."""

    product = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)


class UpdateCartForm(forms.Form):
    """New ``quantity`` for a cart line; 0 removes it."""

    product = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=0, max_value=MAX_QUANTITY)


class RemoveFromCartForm(forms.Form):
    """The ``product`` to remove."""

    product = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class CheckoutForm(forms.Form):
    """The card to pay with. Only its last four digits are ever stored."""

    card_number = forms.CharField(
        label="Card number",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "cc-number", "inputmode": "numeric"}
        ),
    )

    def clean_card_number(self) -> str:
        try:
            return normalize_card(self.cleaned_data["card_number"])
        except InvalidCardNumber as exc:
            raise forms.ValidationError(str(exc), code="invalid_card") from exc
