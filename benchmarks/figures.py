"""What every benchmark script shares: printing a figures dict and its ``--quick`` command line."""
from __future__ import annotations

import argparse
from typing import Callable


def format_figures(figures: dict) -> str:
    """One ``key value`` line per figure, floats to 4 significant digits."""
    return "\n".join(f"{key:<45} {value:>10.4g}" if isinstance(value, float) else f"{key:<45} {value!s:>10}"
                     for key, value in figures.items())


def script_main(run: Callable[..., dict], description: str, quick_help: str, argv: list[str] | None = None) -> int:
    """``python bench_X.py [--quick]``: run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    print(format_figures(run(quick=args.quick)))
    return 0
