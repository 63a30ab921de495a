"""Cross-cutting pieces of the monolith: health checks, JSON logs, demo data."""
