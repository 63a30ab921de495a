"""Orders: checkout, cancellation and the order history of each customer.

``services.checkout`` is the one write path: it validates the cart, reserves
stock through ``inventory.services``, snapshots prices into ``OrderLine`` rows,
takes the payment through ``payments.services`` and records every status change
in ``OrderStatusChange``. The JSON API (``views``) and the HTML storefront both
call it, so the two front doors cannot drift apart.
"""
