"""CSV reading accounts for every line: stray quotes never merge rows, legit quoted fields stay one row.

Each file is written to ``tmp_path`` from rows built here, so the expected records, bad lines and
counts come from the construction, not from the reader. The identity checked on every case:
rows kept + rows reported bad == data lines, and header + rows + blank + quoted line breaks ==
physical lines.
"""
import ast
import logging
from pathlib import Path

import pytest

from fashion_hier.data import CatalogError, make_synthetic_catalog, read_catalog
from fashion_hier.data.csvread import LINES_SHOWN, read_frame, read_records
from fashion_hier.predict import list_images

HEADER = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage",
          "productDisplayName"]
USAGE, NAME = HEADER.index("usage"), HEADER.index("productDisplayName")


def _rows(count: int) -> list[list[str]]:
    """``count`` well-formed rows; row ``i`` lands on line ``i + 2`` of a file with one header line."""
    return [[str(10000 + i), "Men", "Apparel", "Topwear", "Tshirts", "Blue", "Summer", "2012", "Casual",
             f"Blue Tee {i}"] for i in range(count)]


def _with_stray_quote(row: list[str], column: int = USAGE) -> list[str]:
    """The row with a quote opening ``column`` that never closes (what a hand-edited export carries)."""
    return [f'"{value}' if index == column else value for index, value in enumerate(row)]


def _write(path: Path, rows: list[list[str]], delimiter: str = ",", newline: str = "\n") -> Path:
    """Rows joined as they stand (no quoting added), so stray quotes reach the file unchanged."""
    path.write_text(newline.join(delimiter.join(row) for row in [HEADER, *rows]) + newline, encoding="utf-8")
    return path


def _check_every_line_is_counted(parsed, data_lines: int, bad_lines: list[int], on_bad_rows: str) -> None:
    assert [row.line for row in parsed.bad_rows] == bad_lines
    kept_as_is = len(parsed.records) - (len(bad_lines) if on_bad_rows == "recover" else 0)
    assert kept_as_is + len(parsed.bad_rows) == data_lines
    assert 1 + parsed.rows_read + parsed.blank_lines + parsed.quoted_line_breaks == parsed.line_count


# ---- the cases -------------------------------------------------------------------------

def test_two_adjacent_stray_quotes_in_120_rows_are_each_reported_and_no_row_is_merged(tmp_path):
    rows = _rows(120)
    rows[9], rows[10] = _with_stray_quote(rows[9]), _with_stray_quote(rows[10])  # lines 11 and 12
    parsed = read_records(_write(tmp_path / "adjacent.csv", rows))
    assert parsed.records == rows  # each stray quote kept as a plain character, on its own row
    assert [row.swallowed_lines[0] for row in parsed.bad_rows] == [11, 12]
    assert parsed.quoted_line_breaks == 0
    _check_every_line_is_counted(parsed, 120, [11, 12], "recover")


def test_two_adjacent_stray_quotes_show_in_the_catalogue_report_by_line(tmp_path):
    labels_csv = make_synthetic_catalog(tmp_path, n=120, image_size=16, seed=1)
    header, *lines = labels_csv.read_text(encoding="utf-8").splitlines()
    for index in (9, 10):  # lines 11 and 12: a quote opens the second-to-last column and never closes
        fields = lines[index].split(",")
        lines[index] = ",".join([*fields[:-2], '"' + fields[-2], fields[-1]])
    labels_csv.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    report = read_catalog(labels_csv, tmp_path / "images").report
    assert (report.rows_read, report.rows_kept) == (120, 120)
    assert "lines: 121 (1 header + 120 rows)" in str(report)
    assert "line 11: unbalanced quote" in str(report) and "line 12: unbalanced quote" in str(report)


def test_a_stray_quote_on_every_row_of_20000_keeps_all_20000(tmp_path):
    rows = [_with_stray_quote(row) for row in _rows(20_000)]
    path = _write(tmp_path / "every_row.csv", rows)
    parsed = read_records(path)
    assert parsed.records == rows
    _check_every_line_is_counted(parsed, 20_000, list(range(2, 20_002)), "recover")


def test_a_stray_quote_on_every_row_is_refused_in_one_short_line_naming_the_first_lines(tmp_path):
    path = _write(tmp_path / "every_row.csv", [_with_stray_quote(row) for row in _rows(20_000)])
    with pytest.raises(CatalogError) as caught:
        read_records(path, on_bad_rows="raise")
    message = str(caught.value)
    first_lines = ", ".join(str(line) for line in range(2, 2 + LINES_SHOWN))
    assert message.startswith(f"{path}: 20000 malformed rows: 20000 with an unbalanced quote (\") at lines "
                              f"{first_lines} and {20_000 - LINES_SHOWN} more — close or remove the quote")
    assert "on_bad_rows='recover'" in message and "'skip'" in message
    assert "\n" not in message and len(message) < 400


# ---- every placement of stray quotes, every action ---------------------------------------------

def _scattered(rows):
    return {index for index in range(len(rows)) if index % 7 == 3}


CASES = {
    "adjacent pair": lambda rows: {20, 21},
    "three in a row": lambda rows: {5, 6, 7},
    "scattered": _scattered,
    "every row": lambda rows: set(range(len(rows))),
    "last row (never closes)": lambda rows: {len(rows) - 1},
    "first row": lambda rows: {0},
}


@pytest.mark.parametrize("column", [USAGE, NAME, 0], ids=["usage", "last column", "first column"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("on_bad_rows", ["recover", "skip"])
def test_stray_quotes_anywhere_are_each_reported_and_every_line_is_counted(tmp_path, case, column, on_bad_rows):
    rows = _rows(60)
    stray = CASES[case](rows)
    rows = [_with_stray_quote(row, column) if index in stray else row for index, row in enumerate(rows)]
    parsed = read_records(_write(tmp_path / "stray.csv", rows), on_bad_rows)
    bad_lines = sorted(index + 2 for index in stray)
    expected = rows if on_bad_rows == "recover" else [row for index, row in enumerate(rows) if index not in stray]
    assert parsed.records == expected
    assert all(row.swallowed_lines for row in parsed.bad_rows)
    _check_every_line_is_counted(parsed, 60, bad_lines, on_bad_rows)


def test_stray_quotes_beside_legit_multiline_fields_and_crlf_keep_both(tmp_path):
    rows = _rows(30)
    rows[4][NAME] = '"Tee, cotton\r\nslim fit"'   # legit: a delimiter and a line break inside quotes
    rows[5] = _with_stray_quote(rows[5])           # stray, right after it
    rows[12][USAGE] = '"Casual\r\nweekend"'        # legit, not in the last column
    rows[13] = _with_stray_quote(rows[13], NAME)
    parsed = read_records(_write(tmp_path / "mixed.csv", rows, newline="\r\n"))
    assert parsed.records[4][NAME] == "Tee, cotton\r\nslim fit" and parsed.records[12][USAGE] == "Casual\r\nweekend"
    assert parsed.records[5] == rows[5] and parsed.records[13] == rows[13]
    assert parsed.lines[5] == 8 and parsed.lines[14] == 18  # the two line breaks move later rows down
    assert parsed.quoted_line_breaks == 2
    _check_every_line_is_counted(parsed, 30, [8, 17], "recover")


def test_one_stray_quote_in_a_file_larger_than_the_csv_field_limit_is_reported(tmp_path):
    rows = _rows(5000)  # ~350 KB after the quote: more than the csv module's 128 KiB field limit
    rows[2] = _with_stray_quote(rows[2])
    parsed = read_records(_write(tmp_path / "large.csv", rows))
    assert parsed.records == rows
    _check_every_line_is_counted(parsed, 5000, [4], "recover")


# ---- legit quoted fields stay one row ----------------------------------------------------------

@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("column", [USAGE, NAME], ids=["usage", "last column"])
def test_a_quoted_field_with_a_line_break_or_delimiter_is_one_row(tmp_path, delimiter, column):
    rows = _rows(10)
    rows[3][column] = f'"Blue tee{delimiter} cotton\nslim fit"'
    rows[6][column] = f'"Blue tee{delimiter} cotton"'
    rows[8][column] = '"He said ""slim""\n\nfit"'  # escaped quotes and an empty line inside the field
    parsed = read_records(_write(tmp_path / "quoted.csv", rows, delimiter), on_bad_rows="raise")
    assert parsed.records[3][column] == f"Blue tee{delimiter} cotton\nslim fit"
    assert parsed.records[6][column] == f"Blue tee{delimiter} cotton"
    assert parsed.records[8][column] == 'He said "slim"\n\nfit'
    assert parsed.lines == [2, 3, 4, 5, 7, 8, 9, 10, 11, 14] and parsed.quoted_line_breaks == 3
    _check_every_line_is_counted(parsed, 10, [], "raise")


def test_the_catalogue_report_counts_line_breaks_inside_quoted_fields(tmp_path):
    labels_csv = make_synthetic_catalog(tmp_path, n=20, image_size=16, seed=2)
    header, *lines = labels_csv.read_text(encoding="utf-8").splitlines()
    fields = lines[3].split(",")
    lines[3] = ",".join([*fields[:-1], f'"{fields[-1]}\nsecond line"'])
    labels_csv.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    catalog = read_catalog(labels_csv, tmp_path / "images")
    assert len(catalog) == 20 and not catalog.report.bad_rows
    assert "lines: 22 (1 header + 20 rows + 1 inside quoted fields)" in str(catalog.report)


# ---- messages ----------------------------------------------------------------------------------

def test_one_stray_quote_is_refused_naming_its_line_and_the_fix(tmp_path):
    rows = _rows(8)
    rows[3] = _with_stray_quote(rows[3])
    with pytest.raises(CatalogError, match=r"one\.csv line 5: an unbalanced quote \(\"\) would read lines 5-9 into "
                                           r"one field — close or remove the quote, or pass on_bad_rows='recover'"):
        read_records(_write(tmp_path / "one.csv", rows), on_bad_rows="raise")


def test_both_kinds_of_bad_rows_are_refused_together_with_their_counts(tmp_path):
    rows = _rows(12)
    rows[1] = _with_stray_quote(rows[1])
    rows[6][NAME] = "Tee, blue, cotton"  # two unquoted commas in the free-text column
    with pytest.raises(CatalogError) as caught:
        read_records(_write(tmp_path / "both.csv", rows), on_bad_rows="raise")
    assert str(caught.value).startswith(
        f"{tmp_path / 'both.csv'}: 2 malformed rows: 1 with an unbalanced quote (\") at line 3 — close or remove "
        "the quote; 1 with the wrong number of fields at line 8 — quote the 'productDisplayName' column;")


def test_recovered_rows_are_logged_once_with_the_first_lines_and_the_count(tmp_path, caplog):
    path = _write(tmp_path / "logged.csv", [_with_stray_quote(row) for row in _rows(40)])
    with caplog.at_level(logging.WARNING, logger="fashion_hier"):
        read_records(path)
    (record,) = [record for record in caplog.records if "malformed" in record.getMessage()]
    assert record.getMessage() == (f"{path}: 40 malformed rows recovered: 40 with an unbalanced quote (\") at lines "
                                   f"2, 3, 4, 5, 6 and 35 more — close or remove the quote")


def test_a_stray_quote_in_the_header_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text('\nid,"gender,usage\n1,Men,Casual\n', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"header\.csv line 2: the header has an unbalanced quote"):
        read_records(path)


# ---- every command reads CSVs here -------------------------------------------------------------

def test_predict_and_index_image_lists_use_the_same_reader(tmp_path, caplog):
    (tmp_path / "photos").mkdir()
    rows = [[f"sku {i}", f"photos/{i}.jpg"] for i in range(12)]
    rows[4][0], rows[5][0] = '"sku 4', '"sku 5'  # two adjacent stray quotes
    text = "\n".join(";".join(row) for row in [["id", "image_path"], *rows]) + "\n"
    (tmp_path / "list.csv").write_bytes(text.replace("sku 7", "caf\u00e9 7").encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="fashion_hier"):
        paths = list_images(tmp_path / "list.csv")
    assert paths == sorted(str((tmp_path / "photos" / f"{i}.jpg").resolve()) for i in range(12))
    assert any("2 malformed rows recovered: 2 with an unbalanced quote (\") at lines 6, 7" in record.getMessage()
               for record in caplog.records)
    frame, parsed = read_frame(tmp_path / "list.csv")
    assert parsed.encoding == "cp1252" and parsed.delimiter == ";" and len(frame) == 12


def test_a_one_column_image_list_with_a_stray_quote_keeps_every_path(tmp_path):
    path = tmp_path / "paths.csv"
    path.write_text('image_path\na.jpg\n"b.jpg\nc.jpg\nd.jpg\n', encoding="utf-8")
    parsed = read_records(path)
    assert [record[0] for record in parsed.records] == ["a.jpg", '"b.jpg', "c.jpg", "d.jpg"]
    assert [row.line for row in parsed.bad_rows] == [3]


# Files the library wrote itself, read back with pandas (RUN/splits/*.csv, an index's images.csv).
INTERNAL_CSV_READERS = {("evaluation_data.py", "read_split"), ("experiments.py", "_training_rows"),
                        ("demo.py", "chance_levels"), ("search/index.py", "_read_image_paths")}


def test_only_csvread_reads_csv_files_a_user_names():
    package = Path(__file__).resolve().parents[1] / "fashion_hier"
    found = set()
    for module in package.rglob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if isinstance(node, ast.Attribute) and node.attr == "read_csv":
                        found.add((module.relative_to(package).as_posix(), function.name))
    unexpected = {place for place in found if place[0] != "data/csvread.py"} - INTERNAL_CSV_READERS
    assert not unexpected, (f"pandas.read_csv in {sorted(unexpected)}: read a user's CSV with "
                            "fashion_hier.data.csvread.read_frame (same encoding, delimiter and bad-row handling)")
