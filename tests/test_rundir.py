"""RunDir owns the run directory: its file names appear as literals nowhere else in the package."""
from __future__ import annotations

import ast
from pathlib import Path

from fashion_hier.rundir import RunDir

PACKAGE = Path(__file__).resolve().parents[1] / "fashion_hier"
OWNER = PACKAGE / "rundir.py"
RUN_FILE_NAMES = ("model.keras", "best.keras", "labels.json", "config.yaml", "thresholds.json", "history.csv",
                  "finished.json", "head.keras", "features.json", "metrics.json", "finetune_history.csv")


def run_file_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant holding a run file name, f-string parts included.

    Docstrings are left out: they may name the files they explain. Comments are not in the AST.
    """
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and any(name in node.value for name in RUN_FILE_NAMES)]


def test_the_literal_finder_sees_plain_and_formatted_strings_but_not_docstrings():
    source = '''
"""A module about model.keras."""
def load(run):
    """Reads labels.json."""
    path = run / "config.yaml"
    message = f"{run} has no thresholds.json"
    return path, message, RunDir.MODEL
'''
    assert [line for line, _ in run_file_literals(source)] == [5, 6]


def test_no_run_file_name_is_spelled_outside_rundir():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == OWNER:
            continue
        offenders += [f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
                      for line, text in run_file_literals(path.read_text(encoding="utf-8"))]
    assert not offenders, "run file names belong to fashion_hier/rundir.py (use RunDir):\n" + "\n".join(offenders)


def test_every_listed_name_is_a_file_rundir_names():
    named = {value for key, value in vars(RunDir).items() if key.isupper() and isinstance(value, str)}
    assert set(RUN_FILE_NAMES) <= named
