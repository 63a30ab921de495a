"""Storefront: the server-rendered HTML shop.

Plain Django views and templates over the same services as the JSON API:
product pages, a session cart, checkout behind the login page, and the
customer's order history. These pages are what make the monolith a realistic
migration target: cookies, CSRF tokens, redirects and flash messages all have
to survive the strangler proxy unchanged.
"""
