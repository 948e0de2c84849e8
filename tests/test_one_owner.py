"""Every shared constant has one owner: the levels (``labels.LEVELS``), the photo column (``labels.IMAGE_PATH``),
the split names (``rundir.SPLIT_NAMES``)
and the quantity every trainer stops early on (``training_loop.monitor_name``) are spelled once in the package and
imported everywhere else (run file names have their own test, tests/test_rundir.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fashion_hier"
OWNED = {  # the value, and the one module that may spell it
    ("category", "subcategory", "attributes"): "labels.py",
    ("train", "validation", "test"): "rundir.py",
    "val_subcategory_accuracy": None,  # nowhere: training_loop.monitor_name builds it from MONITOR
    "image_path": "labels.py",  # IMAGE_PATH: the column of each row's photo
}


def _literals(source: str):
    """Tuple literals of strings and plain string constants of a module, docstrings left out, with their lines."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    tuples = [node for node in ast.walk(tree) if isinstance(node, ast.Tuple) and node.elts and all(
        isinstance(element, ast.Constant) and isinstance(element.value, str) for element in node.elts)]
    inside = {id(element) for node in tuples for element in node.elts} | docstrings
    found = [(tuple(element.value for element in node.elts), node.lineno) for node in tuples]
    found += [(node.value, node.lineno) for node in ast.walk(tree)
              if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside]
    yield from sorted(found, key=lambda item: item[1])


def test_the_literal_finder_sees_tuples_and_strings_but_not_docstrings():
    source = '"""val_subcategory_accuracy"""\nA = ("train", "validation", "test")\nB = "subcategory_accuracy"\n'
    assert list(_literals(source)) == [(("train", "validation", "test"), 2), ("subcategory_accuracy", 3)]


@pytest.mark.parametrize("value", list(OWNED), ids=str)
def test_each_shared_constant_is_spelled_by_its_owner_only(value):
    spelled = [f"{path.relative_to(PACKAGE)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
               for literal, line in _literals(path.read_text(encoding="utf-8"))
               if literal == value and path.name != OWNED[value]]
    assert not spelled, f"{value!r} belongs to {OWNED[value] or 'no module'}; import it instead: {spelled}"
