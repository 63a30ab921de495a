"""``python -m extracted.orders rebuild-read-model | catch-up | lag``.

Settings come from the same ``ORDERS_*`` variables as the service.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .projection import Projector
from .readmodel import open_read_model
from .settings import load_config, load_settings
from .store import OrdersApplication


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extracted.orders")
    parser.add_argument(
        "command",
        choices=["rebuild-read-model", "catch-up", "lag"],
        help="rebuild the read model from the event store, project what is "
        "new, or print the lag",
    )
    parser.add_argument("--traceback", action="store_true")
    args = parser.parse_args(argv)
    try:
        return _run(args.command)
    except Exception as exc:
        if args.traceback:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(command: str) -> int:
    config = load_config(load_settings())
    store = OrdersApplication(config.event_store_url)
    read_model = open_read_model(config.read_model_url)
    try:
        projector = Projector(store, read_model)
        if command == "rebuild-read-model":
            applied = projector.rebuild()
            print(
                f"rebuilt the read model: {applied} events, "
                f"position {projector.position}"
            )
        elif command == "catch-up":
            applied = projector.catch_up()
            print(f"projected {applied} events, position {projector.position}")
        else:
            events, seconds = projector.lag()
            print(f"{events} events behind, {seconds:.3f} s")
    finally:
        read_model.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
