"""The ``fashion-hier`` commands that have moved out of their library modules: one thin module per command.

A command parses its arguments (``fashion_hier.cli_args``), calls the library and prints; the library never
imports a command, so a command can use any part of it without an import cycle.
"""
