"""Benchmarks of the strangler proxy: ``make bench`` runs ``bench/run.py``.

Modules:

- ``run``: the driver; starts every process, runs wrk, prints one table.
- ``upstream``: a raw asyncio/httptools HTTP/1.1 server (1 KB JSON, a body sink
  and a body source) used as the fast upstream and for the streaming test.
- ``nginx``: temporary nginx configurations (static upstream, reverse proxy).
- ``procs``: starting, watching and stopping child processes; /proc figures.
- ``wrk``: running wrk and parsing its output.
- ``stream``: the 1 GiB upload/download through the proxy.
- ``clients``: the hot-path client comparison (aiohttp, httpx, raw HTTP/1.1).
- ``profile``: py-spy sampling of the proxy under load, top functions.
"""
