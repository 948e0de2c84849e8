"""``python -m experiments.run CONFIG... [--data DIR | --synthetic N] [--set k=v ...] [--out DIR]``.

Trains and evaluates each config and writes one comparison table; the code is
``fashion_hier.experiments``, its command ``fashion_hier.commands.experiments`` (also ``fashion-hier experiments``).
"""
import sys

from fashion_hier.commands.experiments import main

if __name__ == "__main__":
    sys.exit(main())
