"""Inventory: warehouses and how much of each product they hold.

Other apps change stock only through :mod:`.services` (``reserve``,
``release``, ``commit``), which lock the rows they touch, so concurrent orders
can never take more than is there.
"""
