"""The `fashion-hier` command: one sub-command per module, each module owning its own arguments.

Every sub-command module exposes ``main(argv=None, parser=None) -> int`` (it adds its own arguments
to ``parser``), so ``fashion-hier evaluate ...`` and ``python -m fashion_hier.evaluate ...`` behave the same.
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

SUBCOMMANDS = {
    "demo": ("fashion_hier.demo", "generate a synthetic catalogue, train a small model and evaluate it"),
    "train": ("fashion_hier.train", "train a model from a YAML config into a run directory"),
    "evaluate": ("fashion_hier.evaluate", "metrics, tables and plots for a run on a split or a labelled CSV"),
    "predict": ("fashion_hier.predict", "score a folder or CSV of images with a trained run"),
    "features": ("fashion_hier.features", "cache frozen-backbone features and train the head on them"),
    "audit": ("fashion_hier.audit", "rank the catalogue rows whose labels are probably wrong (cleanlab, cross-validated)"),
    "experiments": ("fashion_hier.experiments", "train and evaluate several configs into one comparison table"),
    "export": ("fashion_hier.export", "export a run as a SavedModel (serves JPEG bytes) or TFLite"),
    "index": ("fashion_hier.search.index_command", "embed a catalogue and build a similarity index"),
    "similar": ("fashion_hier.search.similar_command", "nearest neighbours of query images in an index"),
}


def _usage() -> str:
    lines = ["usage: fashion-hier COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "Run 'fashion-hier COMMAND --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the sub-command's own ``main`` (imported lazily: TensorFlow loads only when needed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from fashion_hier import __version__

        print(f"fashion-hier {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"fashion-hier: unknown command {command!r}; known commands: {', '.join(SUBCOMMANDS)}",
              file=sys.stderr)
        return 2
    module = import_module(SUBCOMMANDS[command][0])
    parser = argparse.ArgumentParser(prog=f"fashion-hier {command}",
                                     description=SUBCOMMANDS[command][1])
    return int(module.main(rest, parser=parser) or 0)


if __name__ == "__main__":
    sys.exit(main())
