"""Payments: card payments taken at checkout through a simulated provider.

``provider`` stands in for a card processor (deterministic outcomes by card
number), ``services`` records a ``Payment`` per attempt and refunds it, the API
exposes payments to staff. The full card number never reaches the database.
"""
