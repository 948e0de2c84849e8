"""Every command refuses a bad argument while parsing: one line naming it, exit code 2, nothing written, no
TensorFlow; and atomic writes give files the mode the user's umask asks for."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_hier import cli_args
from fashion_hier.atomic import atomic_directory, atomic_open, atomic_path, atomic_write_text
from fashion_hier.cli import SUBCOMMANDS
from fashion_hier.cli import main as cli_main
from fashion_hier.rundir import RunDir

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_workspace(root: Path) -> dict[str, str]:
    """The paths the cases name: things that exist (a file, folders, a run, a model, images, a config) and
    things that do not (``missing``, and ``new``, under which every valid output argument points)."""
    paths = {name: root / relative for name, relative in {
        "file": "file.txt", "empty": "empty", "index": "index", "images": "images", "run": "run",
        "folder": "folder.tflite", "images_csv": "images.csv", "model": "tiny.keras", "config": "tiny.yaml",
        "image": "images/a.jpg", "missing": "missing", "new": "new", "new_csv": "new/out.csv"}.items()}
    for name in ("empty", "index", "images", "run", "folder"):
        paths[name].mkdir()
    paths["file"].write_text("user data\n")
    for default_output in ("fashion_hier_demo", "audit"):  # files where demo and audit write by default
        (root / default_output).write_text("user data\n")
    paths["image"].write_bytes(b"")
    paths["images_csv"].write_text("image_path\nimages/a.jpg\n")
    paths["model"].write_bytes(b"")
    for config in (paths["config"], RunDir(paths["run"]).config):
        config.write_text("name: run\n")
    return {name: str(path) for name, path in paths.items()}


# (command, arguments, the argument named in the error, a fragment of the message)
RUN = ["--run", "{run}", "--out", "{new}"]
PREDICT = ["--run", "{model}", "--images", "{images}", "--out", "{new_csv}"]
INDEX = ["--run", "{model}", "--images", "{images}", "--out", "{new}"]
SIMILAR = ["{image}", "--index", "{index}"]
CASES = [
    ("demo", ["--out", "{file}"], "--out", "is a file"),
    ("demo", [], "--out", "fashion_hier_demo is a file"),  # the default is checked too
    ("demo", ["--out", "{new}", "--n", "0"], "--n", "pass a whole number >= 15, not '0'"),
    ("demo", ["--out", "{new}", "--n", "abc"], "--n", "not 'abc'"),
    ("demo", ["--out", "{new}", "--epochs", "0"], "--epochs", ">= 1"),
    ("demo", ["--out", "{new}", "--epochs", "-1"], "--epochs", "not '-1'"),
    ("demo", ["--out", "{new}", "--seed", "-1"], "--seed", ">= 0"),
    ("train", ["--config", "{missing}"], "--config", "does not exist; pass a YAML file"),
    ("train", ["--config", "{empty}"], "--config", "is a folder, not a file"),
    ("evaluate", ["--run", "{missing}"], "--run", "does not exist; pass a run directory"),
    ("evaluate", ["--run", "{file}"], "--run", "is a file, not a folder"),
    ("evaluate", ["--run", "{empty}"], "--run", "is not a run directory"),
    ("evaluate", [*RUN, "--labels", "{missing}", "--images", "{images}"], "--labels", "does not exist"),
    ("evaluate", [*RUN, "--labels", "{images_csv}", "--images", "{file}"], "--images", "is a file, not a folder"),
    ("evaluate", ["--run", "{run}", "--out", "{file}"], "--out", "is a file"),
    ("evaluate", [*RUN, "--tune-thresholds", "--floor", "2"], "--floor", "pass a number in [0, 1], not '2'"),
    ("evaluate", [*RUN, "--tune-thresholds", "--cap", "nan"], "--cap", "not 'nan'"),
    ("evaluate", [*RUN, "--batch-size", "0"], "--batch-size", ">= 1"),
    ("predict", ["--run", "{missing}", *PREDICT[2:]], "--run", "or a .keras model file"),
    ("predict", ["--run", "{file}", *PREDICT[2:]], "--run", "is not a .keras model file"),
    ("predict", ["--run", "{empty}", *PREDICT[2:]], "--run", "is not a run directory"),
    ("predict", [*PREDICT[:2], "--images", "{missing}", *PREDICT[4:]], "--images", "does not exist"),
    ("predict", [*PREDICT[:2], "--images", "{file}", *PREDICT[4:]], "--images", "neither a folder nor a .csv"),
    ("predict", [*PREDICT[:4], "--out", "{empty}"], "--out", "is a folder, not a file; pass the name of a file"),
    ("predict", [*PREDICT[:4], "--out", "{file}/out.csv"], "--out", "is a file, so no folder can be made there"),
    ("predict", [*PREDICT, "--batch-size", "0"], "--batch-size", ">= 1"),
    ("predict", [*PREDICT, "--batch-size", "-1"], "--batch-size", "not '-1'"),
    ("predict", [*PREDICT, "--batch-size", "abc"], "--batch-size", "not 'abc'"),
    ("predict", [*PREDICT, "--shard", "3/3"], "--shard", "0 <= i < n"),
    ("predict", [*PREDICT, "--engine", "dask"], "--engine", "invalid choice"),
    ("features", ["--config", "{missing}"], "--config", "does not exist"),
    ("features", ["--run", "{missing}"], "--run", "does not exist"),
    ("features", ["--run", "{empty}"], "--run", "is not a run directory"),
    ("features", ["--config", "{config}", "--cache", "{file}"], "--cache", "is a file"),
    ("features", ["--config", "{config}", "--batch-size", "0"], "--batch-size", ">= 1"),
    ("audit", ["--run", "{missing}", "--out", "{new}"], "--run", "does not exist"),
    ("audit", ["--labels", "{missing}", "--images", "{images}", "--out", "{new}"], "--labels", "does not exist"),
    ("audit", ["--labels", "{images_csv}", "--images", "{missing}", "--out", "{new}"], "--images", "does not exist"),
    ("audit", ["--run", "{run}", "--out", "{file}"], "--out", "is a file"),
    ("audit", ["--run", "{run}"], "--out", "audit is a file"),
    ("audit", [*RUN, "--cache", "{file}"], "--cache", "is a file"),
    ("audit", [*RUN, "--weights", "{missing}"], "--weights", "'imagenet', 'none' or an existing weights file"),
    ("audit", [*RUN, "--backbone", "resnet51"], "--backbone", "invalid choice: 'resnet51'"),
    ("audit", [*RUN, "--folds", "1"], "--folds", ">= 2"),
    ("audit", [*RUN, "--folds", "abc"], "--folds", "not 'abc'"),
    ("audit", [*RUN, "--gallery", "-1"], "--gallery", ">= 0"),
    ("audit", [*RUN, "--seed", "-1"], "--seed", ">= 0"),
    ("experiments", ["{missing}", "--out", "{new}"], "configs", "does not exist"),
    ("experiments", ["{config}", "--data", "{missing}", "--out", "{new}"], "--data", "does not exist"),
    ("experiments", ["{config}", "--data", "{file}", "--out", "{new}"], "--data", "is a file, not a folder"),
    ("experiments", ["{config}", "--synthetic", "0", "--out", "{new}"], "--synthetic", ">= 15"),
    ("experiments", ["{config}", "--synthetic", "60", "--synthetic-image-size", "8", "--out", "{new}"],
     "--synthetic-image-size", ">= 16"),
    ("experiments", ["{config}", "--out", "{file}"], "--out", "is a file"),
    ("experiments", ["{config}", "--out", "{new}", "--verbose", "5"], "--verbose", "invalid choice"),
    ("export", ["--run", "{missing}", "--format", "savedmodel", "--out", "{new}"], "--run", "does not exist"),
    ("export", ["--run", "{model}", "--format", "savedmodel", "--out", "{file}"], "--out", "is a file"),
    ("export", ["--run", "{model}", "--format", "tflite", "--out", "{folder}"], "--out", "is a folder"),
    ("export", ["--run", "{model}", "--format", "onnx", "--out", "{new}"], "--format", "invalid choice"),
    ("export", ["--run", "{model}", "--format", "tflite", "--out", "{new}", "--quantization", "int4"],
     "--quantization", "invalid choice"),
    ("index", ["--run", "{missing}", *INDEX[2:]], "--run", "does not exist"),
    ("index", [*INDEX[:2], "--images", "{missing}", *INDEX[4:]], "--images", "does not exist"),
    ("index", [*INDEX[:4], "--out", "{file}"], "--out", "is a file"),
    ("index", [*INDEX, "--batch-size", "0"], "--batch-size", ">= 1"),
    ("index", [*INDEX, "--embedding", "pixels"], "--embedding", "invalid choice"),
    ("similar", ["{missing}", *SIMILAR[1:]], "images", "does not exist; pass a query image"),
    ("similar", ["{image}", "--index", "{missing}"], "--index", "does not exist"),
    ("similar", ["{image}", "--index", "{file}"], "--index", "is a file, not a folder"),
    ("similar", [*SIMILAR, "--run", "{missing}"], "--run", "does not exist"),
    ("similar", [*SIMILAR, "-k", "0"], "-k", ">= 1"),
    ("similar", [*SIMILAR, "-k", "abc"], "-k", "not 'abc'"),
    ("similar", [*SIMILAR, "--out", "{empty}"], "--out", "is a folder"),
    ("similar", [*SIMILAR, "--plot", "{file}"], "--plot", "is a file"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("workspace")
    return root, make_workspace(root)


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its content (None for a folder): what a command must leave as it was."""
    return {str(path.relative_to(root)): None if path.is_dir() else path.read_bytes() for path in root.rglob("*")}


def _case_id(case) -> str:
    command, arguments, name, _ = case
    return f"{command}-{name}-{'_'.join(Path(a).name for a in arguments[-2:])}"


def test_every_command_has_cases():
    assert {case[0] for case in CASES} == set(SUBCOMMANDS)


@pytest.mark.parametrize("command, arguments, name, fragment", CASES, ids=[_case_id(case) for case in CASES])
def test_a_bad_argument_is_one_line_naming_it_with_exit_code_2_and_nothing_written(
        workspace, monkeypatch, capsys, command, arguments, name, fragment):
    root, paths = workspace
    monkeypatch.chdir(root)  # a default output folder, if one were used, would land here and be seen
    before = _tree(root)
    assert cli_main([command, *(argument.format(**paths) for argument in arguments)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert error.startswith(f"fashion-hier {command}: argument {name}: ") and fragment in error, error
    assert _tree(root) == before and not Path(paths["new"]).exists()


def test_missing_and_unknown_arguments_are_one_line_too(workspace, capsys):
    _, paths = workspace
    assert cli_main(["predict", "--run", paths["model"]]) == 2
    error = capsys.readouterr().err
    assert error == ("fashion-hier predict: the following arguments are required: --images, --out "
                     "(see 'fashion-hier predict --help')\n")
    assert cli_main(["similar", paths["image"], "--index", paths["index"], "--top", "3"]) == 2
    assert "unrecognized arguments: --top 3" in capsys.readouterr().err


def test_debug_shows_the_argument_error_as_a_traceback(workspace):
    _, paths = workspace
    with pytest.raises(ValueError, match="argument --batch-size: pass a whole number >= 1, not '0'"):
        cli_main(["predict", "--debug", "--run", paths["model"], "--images", paths["images"],
                  "--out", paths["new_csv"], "--batch-size", "0"])


def test_parse_time_refusals_never_import_tensorflow(workspace):
    """One bad argument per command, all in one fresh interpreter: TensorFlow must still be unloaded."""
    root, paths = workspace
    first_case = {}
    for command, arguments, _, _ in CASES:
        first_case.setdefault(command, [command, *(argument.format(**paths) for argument in arguments)])
    script = ("import json, sys\nfrom fashion_hier.cli import main\n"
              f"codes = [main(argv) for argv in {list(first_case.values())!r}]\n"
              "print(json.dumps([codes, 'tensorflow' in sys.modules or 'keras' in sys.modules]))\n")
    environment = {**os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, env=environment,
                          timeout=300)
    assert done.stdout.strip() == json.dumps([[2] * len(first_case), False]), done.stdout + done.stderr


@pytest.mark.parametrize("rule, text, value", [
    (cli_args.positive_int, "32", 32), (cli_args.non_negative_int, "0", 0), (cli_args.int_at_least(2), "2", 2),
    (cli_args.probability, "0", 0.0), (cli_args.probability, "1", 1.0), (cli_args.fraction, "1e-3", 0.001),
    (cli_args.as_text(cli_args.output_directory), "./new//out", "./new//out"),
])
def test_a_rule_returns_the_value_of_a_good_argument(tmp_path, monkeypatch, rule, text, value):
    monkeypatch.chdir(tmp_path)
    assert rule(text) == value


@pytest.mark.parametrize("rule, text", [
    (cli_args.positive_int, "0"), (cli_args.positive_int, "1.5"), (cli_args.positive_int, "-"),
    (cli_args.non_negative_int, "-1"), (cli_args.fraction, "0"), (cli_args.fraction, "1.01"),
    (cli_args.probability, "-0.1"), (cli_args.probability, "nan"), (cli_args.probability, "inf"),
])
def test_a_number_rule_names_the_value_it_refuses(rule, text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^pass a (whole )?number .*, not '{re.escape(text)}'$"):
        rule(text)


def test_an_empty_path_is_refused_by_every_path_rule():
    rules = [cli_args.existing_file("a file"), cli_args.existing_directory("a folder"), cli_args.run_directory,
             cli_args.run_or_model, cli_args.image_source, cli_args.output_file, cli_args.output_directory]
    for rule in rules:
        with pytest.raises(argparse.ArgumentTypeError, match="an empty path"):
            rule("")


# ---- the files written follow the umask ----------------------------------------------------------
@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_atomic_writes_give_the_mode_a_plain_write_would_under_the_umask(tmp_path, umask, file_mode, folder_mode):
    previous = os.umask(umask)
    try:
        text = atomic_write_text(tmp_path / "metrics.json", "{}\n")
        with atomic_open(tmp_path / "predictions.csv", "w") as handle:
            handle.write("image_path\n")
        with atomic_path(tmp_path / "model.keras") as temporary:
            temporary.write_bytes(b"model")
        with atomic_directory(tmp_path / "index") as folder:
            (folder / "index.json").write_text("{}\n")
        with open(tmp_path / "plain.txt", "w") as handle:  # the oracle: what open() gives under this umask
            handle.write("plain\n")
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in
             (text, tmp_path / "predictions.csv", tmp_path / "model.keras", tmp_path / "plain.txt")}
    assert modes == dict.fromkeys(modes, file_mode)
    assert (tmp_path / "index").stat().st_mode & 0o777 == folder_mode
    assert sorted(path.name for path in tmp_path.iterdir()) == ["index", "metrics.json", "model.keras",
                                                                "plain.txt", "predictions.csv"]


def test_a_replaced_file_keeps_its_own_mode(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_a_writer_that_recreates_the_temporary_file_still_gets_the_umask_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "table.csv") as temporary:
            temporary.unlink()
            descriptor = os.open(temporary, os.O_CREAT | os.O_WRONLY, 0o600)  # as tempfile.mkstemp would
            os.close(descriptor)
    finally:
        os.umask(previous)
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o644
