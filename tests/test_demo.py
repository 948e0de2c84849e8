"""demo: refuses to clobber a folder, and its summary puts each level beside chance."""
from __future__ import annotations

from fashion_hier.commands.demo import main
from fashion_hier.demo import summary_table


def test_demo_refuses_a_non_empty_output_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user data")
    assert main(["--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_summary_table_lists_each_level_with_its_chance_level():
    report = {"n_samples": 90, "category": {"accuracy": 0.91}, "subcategory": {"accuracy": 0.5},
              "attributes": {"mAP": 0.734}}
    table = summary_table(report, {"category": 0.25, "subcategory": 0.125, "attributes": 0.3})
    lines = table.splitlines()
    assert lines[0] == "test split (90 images)"
    assert lines[2].split() == ["category", "accuracy", "0.910", "0.250"]
    assert lines[3].split() == ["subcategory", "accuracy", "0.500", "0.125"]
    assert lines[4].split() == ["attributes", "mAP", "0.734", "0.300"]
