"""Catalog: categories and products, the first capability the tutorial extracts."""
