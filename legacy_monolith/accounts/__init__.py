"""Accounts: the shop's users (customers and staff) and how they sign in."""
