"""README.md cannot rot: its set-up commands come first, its Python runs, its diagram is the model, its results are the files."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
TINY = {"N_PRODUCTS, IMAGE_SIZE, EPOCHS = 600, 64, 20": "N_PRODUCTS, IMAGE_SIZE, EPOCHS = 60, 32, 1"}


def _blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang == language]


def test_readme_starts_with_the_two_setup_commands():
    first_fence = README.index("```")
    intro = [line for line in README[:first_fence].splitlines() if line.strip()]
    assert intro[0] == "# fashion_hier" and len(intro) <= 3  # title and at most two lines
    fenced = FENCE.findall(README)
    assert fenced[0] == ("bash", "pip install . && fashion-hier demo\n")
    assert fenced[1] == ("bash", 'pip install ".[dev]" && python3 -m pytest -q\n')  # what .ci/run executes


@pytest.mark.slow
def test_python_blocks_run_in_order(tmp_path, monkeypatch):
    blocks = _blocks("python")
    assert len(blocks) >= 3
    source = "\n".join(blocks)
    for full, small in TINY.items():
        assert full in source, f"README quickstart no longer sets {full!r}; update TINY in this test"
        source = source.replace(full, small)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - the README is ours
    assert (tmp_path / "runs" / "quickstart" / "metrics.json").is_file()
    assert len(namespace["catalog"]) == 60 and set(namespace["catalog"].label_space().attributes) >= {"Casual"}


def _diagram() -> tuple[set[str], set[tuple[str, str]]]:
    """Node ids and edges of the README's Mermaid flowchart (labels in ["..."] removed, subgraph ids ignored)."""
    (diagram,) = _blocks("mermaid")
    nodes, edges = set(), set()
    for line in diagram.splitlines():
        line = re.sub(r'\["[^"]*"\]', "", line).strip()
        if not line or line.startswith(("flowchart", "subgraph", "end", "%%")):
            continue
        stages = [[name.strip() for name in part.split("&")] for part in line.split("-->")]
        nodes.update(name for stage in stages for name in stage)
        edges.update((a, b) for left, right in zip(stages, stages[1:]) for a in left for b in right)
    return nodes, edges


def _keras_history_names(value) -> set[str]:
    """Names of the layers referenced by the serialized keras tensors (``keras_history``) inside ``value``."""
    if isinstance(value, dict):
        if "keras_history" in value:
            return {value["keras_history"][0]}
        return set().union(*map(_keras_history_names, value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*map(_keras_history_names, value)) if value else set()
    return set()


def test_architecture_diagram_is_the_built_model_layer_for_layer():
    pytest.importorskip("keras")
    from fashion_hier.models import build_model

    model = build_model(2, 3, 4, backbone="small_cnn", weights=None, input_shape=(32, 32, 3), units=8)
    layers = {layer.name for layer in model.layers}
    # the public config of a functional model names, per layer, the layers its inputs come from
    model_edges = {(source, layer["name"]) for layer in model.get_config()["layers"]
                   for source in _keras_history_names(layer["inbound_nodes"])}
    model_edges = {(a, b) for a, b in model_edges if a in layers and b in layers}
    nodes, edges = _diagram()
    assert nodes == layers
    assert edges == model_edges


def test_results_section_shows_the_committed_synthetic_comparison():
    results = README[README.index("\n## Results\n"):]
    table = (ROOT / "experiments" / "results" / "synthetic" / "comparison.md").read_text(encoding="utf-8")
    assert table.strip() in results
    command = (ROOT / "experiments" / "results" / "synthetic" / "README.md").read_text(encoding="utf-8")
    (shell,) = [body for lang, body in FENCE.findall(command) if lang == "bash"]
    assert shell.strip() in results  # the command that produced the table, verbatim


def _readme_commands() -> list[tuple[str, list[str]]]:
    """Every ``fashion-hier COMMAND --option ...`` line of the README's bash blocks (continuations joined)."""
    import shlex

    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("fashion-hier "):
                words = shlex.split(line.replace("*", "STAR"))
                commands.append((words[1], [word.split("=")[0] for word in words[2:] if word.startswith("--")]))
    return commands


def test_every_option_the_readme_shows_is_one_its_command_takes(capsys):
    from fashion_hier.cli import SUBCOMMANDS, main

    commands = _readme_commands()
    assert len(commands) >= 15 and {name for name, _ in commands} <= set(SUBCOMMANDS)
    for name in sorted({name for name, _ in commands}):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        help_text = capsys.readouterr().out
        for _, options in filter(lambda command: command[0] == name, commands):
            unknown = [option for option in options if option not in help_text]
            assert not unknown, f"README: 'fashion-hier {name}' has no option {unknown}"


def test_every_module_the_docs_name_exists():
    """docs/architecture.md's table and docs/api.md's headings name files and packages that are there."""
    package = ROOT / "fashion_hier"
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = [line.split("|")[1] for line in architecture.splitlines() if line.startswith("| `")]
    named = [name for cell in table for name in re.findall(r"`([\w/]+(?:\.py|/))`", cell)]
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    named += re.findall(r"`fashion_hier/([\w/]+(?:\.py|/))`", api)
    assert len(named) > 30
    missing = sorted({name for name in named if not (package / name).exists()})
    assert not missing, f"the docs name modules that do not exist: {missing}"
