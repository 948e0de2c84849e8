"""``python -m fashion_hier.features``: the ``fashion-hier features`` command."""
import sys

from fashion_hier.commands.features import main

sys.exit(main())
