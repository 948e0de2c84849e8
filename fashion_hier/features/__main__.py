"""``python -m fashion_hier.features``: the ``fashion-hier features`` command."""
import sys

from fashion_hier.features.cli import main

sys.exit(main())
