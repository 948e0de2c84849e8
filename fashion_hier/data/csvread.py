"""Read a labels CSV's records without losing any silently: encoding, delimiter, bad rows, stray quotes.

Real catalogue exports come in UTF-8 (with or without a byte-order mark) or Windows cp1252, with
commas, semicolons or tabs, with unquoted commas in a free-text column, and now and then with
unbalanced ``"`` that would make the csv module read the following lines into one field. Each such
problem is detected, named by line and fixed, skipped or refused (``on_bad_rows``); every physical
line of the file is accounted for (header, rows, blank lines, line breaks inside quoted fields).
Every command that reads a user's CSV (train, evaluate, predict, index, audit) reads it here.
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import pandas as pd

logger = logging.getLogger(__name__)

BAD_ROW_ACTIONS = ("recover", "skip", "raise")
DELIMITERS = (",", ";", "\t", "|")
LINES_SHOWN = 5  # line numbers a message names before it says "and N more"
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_ACTIONS = {"recover": "recovered", "skip": "skipped", "raise": "refused"}
_QUOTE = '"'


class CatalogError(ValueError):
    """A labels CSV or image folder that cannot give a catalogue; the message names the file, line or column and the fix."""


@dataclass
class BadRow:
    """A CSV record that could not be read as it stands: a wrong field count or an unbalanced quote."""

    line: int
    fields: int
    expected: int
    action: str  # "recovered", "skipped" or "refused"
    swallowed_lines: tuple[int, int] | None = None  # lines an unbalanced quote would have read into one field

    @property
    def problem(self) -> str:
        """What is wrong with the row, without what was done about it."""
        if self.swallowed_lines:
            first, last = self.swallowed_lines
            if first == last:
                return "an unbalanced quote (\") never closes"
            return f"an unbalanced quote (\") would read lines {first}-{last} into one field"
        return f"{self.fields} fields, expected {self.expected}"

    @property
    def reason(self) -> str:
        """The problem and what was done about it, for the catalogue report."""
        if self.action != "recovered":
            fix = "left out" if self.action == "skipped" else "refused"
        elif self.swallowed_lines:
            fix = "quote read as a plain character"
        elif self.fields > self.expected:
            fix = "surplus fields joined into the last column"
        else:
            fix = "missing trailing fields left empty"
        return f"{self.problem.removeprefix('an ')}: {fix}"


@dataclass
class CsvRecords:
    """The header and the data records of a CSV, each record with the line it starts on."""

    header: list[str]
    records: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","
    line_count: int = 0      # physical lines in the file
    blank_lines: int = 0     # blank lines outside quoted fields, before the header included
    quoted_line_breaks: int = 0  # lines that continue a record (a legit line break inside a quoted field)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Data records found, including the ones left out as malformed."""
        return len(self.records) + sum(row.action == "skipped" for row in self.bad_rows)


class _Record(NamedTuple):
    line: int        # 1-based line the record starts on
    last_line: int   # 1-based line it ends on
    fields: list[str]
    swallowed_to: int | None = None  # for an unbalanced quote on ``line``: the line the csv module would read to


def check_on_bad_rows(on_bad_rows: str) -> None:
    """Refuse an ``on_bad_rows`` that is not one of ``BAD_ROW_ACTIONS``, before any file is read."""
    if on_bad_rows not in BAD_ROW_ACTIONS:
        raise ValueError(f"on_bad_rows must be one of {BAD_ROW_ACTIONS}, got {on_bad_rows!r}")


def read_records(path: str | os.PathLike, on_bad_rows: str = "recover") -> CsvRecords:
    """Decode ``path``, detect its delimiter and parse its records, fixing, dropping or refusing malformed ones.

    With ``on_bad_rows="raise"`` the whole file is read first, so the one error names every kind
    of problem, the first lines of each and their count. Otherwise one warning says the same.
    """
    check_on_bad_rows(on_bad_rows)
    path = Path(path)
    text, encoding, note = _decode(path)
    lines = list(io.StringIO(text, newline=""))  # splits on \n, \r\n and \r, keeping the line ends
    if not any(line.strip() for line in lines):
        raise CatalogError(f"{path} is empty: expected a header line naming the columns (e.g. id,subCategory,"
                           "articleType,...) and one row per product")
    delimiter = _detect_delimiter(lines)
    parsed = CsvRecords(header=[], encoding=encoding, delimiter=delimiter, line_count=len(lines),
                        notes=[note] if note else [])
    header_index = next(index for index, line in enumerate(lines) if line.strip())
    parsed.blank_lines = header_index
    if _unclosed_quote(lines[header_index].rstrip("\r\n"), delimiter) is not None:
        raise CatalogError(f"{path} line {header_index + 1}: the header has an unbalanced quote (\"); "
                           "close or remove it")
    parsed.header = [name.strip() for name in _read_alone(lines[header_index], delimiter)]
    width = len(parsed.header)
    try:
        records = list(_split_records(lines, delimiter, header_index + 1, width))
    except csv.Error as error:  # a line over the csv module's field size limit without any quote
        raise CatalogError(f"{path} cannot be read as a CSV file ({error}); is it a text export of a table?") from None
    for record in records:
        if _blank(record.fields):
            parsed.blank_lines += 1
            continue
        if record.swallowed_to or len(record.fields) != width:
            swallowed = (record.line, record.swallowed_to) if record.swallowed_to else None
            parsed.bad_rows.append(BadRow(record.line, len(record.fields), width, _ACTIONS[on_bad_rows], swallowed))
            if on_bad_rows != "recover":
                continue
        parsed.records.append(_fit_fields(record.fields, width, delimiter))
        parsed.lines.append(record.line)
        parsed.quoted_line_breaks += record.last_line - record.line
    if parsed.bad_rows:
        _report_bad_rows(path, parsed, on_bad_rows)
    if not parsed.rows_read:
        raise CatalogError(f"{path} has a header (line {header_index + 1}) but no data rows: add one row per "
                           "product below it")
    _check_every_line_counted(path, parsed)
    return parsed


def read_frame(path: str | os.PathLike, on_bad_rows: str = "recover") -> tuple[pd.DataFrame, CsvRecords]:
    """The CSV's rows as text columns (missing values as NaN), indexed by the line each row starts on.

    ``read_records`` finds and fixes the records; pandas then parses them, so missing values
    (empty, ``NA``, ``nan``...) follow pandas' rules. All columns are read as text: ids keep
    leading zeros and labels never become floats.
    """
    parsed = read_records(path, on_bad_rows)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([parsed.header, *parsed.records])
    buffer.seek(0)
    frame = pd.read_csv(buffer, dtype=str, skipinitialspace=True, keep_default_na=True)
    frame = frame.apply(lambda column: column.str.strip().mask(column.str.strip() == ""))
    frame.index = pd.Index(parsed.lines, name="line")
    return frame, parsed


def _summary(bad_rows: list[BadRow], last_column: str) -> str:
    """The malformed rows in one line: per kind of problem, the count, the first few lines and the fix."""
    parts = []
    for quote, kind in ((True, "an unbalanced quote (\")"), (False, "the wrong number of fields")):
        rows = [row for row in bad_rows if bool(row.swallowed_lines) == quote]
        if rows:
            parts.append(f"{len(rows)} with {kind} at {_line_list([row.line for row in rows])} — "
                         f"{_fix(rows[0], last_column)}")
    return "; ".join(parts)


def _fix(row: BadRow, last_column: str) -> str:
    return "close or remove the quote" if row.swallowed_lines else f"quote the {last_column!r} column"


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _line_list(lines: list[int]) -> str:
    shown = ", ".join(str(line) for line in lines[:LINES_SHOWN])
    more = f" and {len(lines) - LINES_SHOWN} more" if len(lines) > LINES_SHOWN else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def _report_bad_rows(path: Path, parsed: CsvRecords, on_bad_rows: str) -> None:
    """Raise one error naming the malformed rows (``on_bad_rows="raise"``), else log one warning."""
    bad_rows, last_column = parsed.bad_rows, parsed.header[-1]
    options = "or pass on_bad_rows='recover' (fix {}) or 'skip'"
    if on_bad_rows == "raise" and len(bad_rows) == 1:
        (row,) = bad_rows
        raise CatalogError(f"{path} line {row.line}: {row.problem} — {_fix(row, last_column)}, "
                           f"{options.format('the row')}")
    summary = _summary(bad_rows, last_column)
    if on_bad_rows == "raise":
        raise CatalogError(f"{path}: {_count(bad_rows, 'malformed row')}: {summary}; {options.format('each row')}")
    logger.warning("%s: %s %s: %s", path, _count(bad_rows, "malformed row"), _ACTIONS[on_bad_rows], summary)


def _check_every_line_counted(path: Path, parsed: CsvRecords) -> None:
    """Refuse a read in which some physical line is neither header, row, blank nor a quoted line break."""
    counted = 1 + parsed.rows_read + parsed.blank_lines + parsed.quoted_line_breaks
    if counted != parsed.line_count:  # pragma: no cover - a reader bug, never the file's fault
        raise CatalogError(f"{path}: read {counted} lines of {parsed.line_count}; this is a fashion_hier bug, "
                           "please report it with the file")


def _blank(fields: list[str]) -> bool:
    return not fields or (len(fields) == 1 and not fields[0].strip())


def _decode(path: Path) -> tuple[str, str, str | None]:
    """The file's text, the encoding used, and a warning when it was not UTF-8."""
    raw = path.read_bytes()
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding, None
            except UnicodeDecodeError:
                break
    try:
        return raw.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
    for encoding in ("cp1252", "latin-1"):  # latin-1 decodes any byte; cp1252 first: it is what Excel writes
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        note = (f"{path} is not UTF-8 (line {line} has a byte that is not valid UTF-8); read it as {encoding} — "
                "save the file as UTF-8 if some names look wrong")
        logger.warning(note)
        return text, encoding, note
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def _detect_delimiter(lines: list[str]) -> str:
    """The delimiter the header line uses most (comma, semicolon, tab or pipe); comma when it has none."""
    header = next(line for line in lines if line.strip())
    counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
    best = max(DELIMITERS, key=lambda delimiter: counts[delimiter])  # ties keep DELIMITERS' order
    return best if counts[best] else ","


def _split_records(lines: list[str], delimiter: str, start: int, width: int) -> Iterator[_Record]:
    """The records from line index ``start`` on (``fields == []`` for a blank line).

    A record that spans lines is kept only when ``_merges_rows`` finds it well formed; otherwise
    the quote on its first line is unbalanced: that line is read alone (the quote as a plain
    character) and reading restarts on the next line, so each line is read as a row once.
    """
    position = start
    while position < len(lines):
        for first, last, fields in _lenient_records(lines, delimiter, position):
            if fields is None or _merges_rows(lines, first, last, fields, delimiter, width):
                yield _Record(first + 1, first + 1, _read_alone(lines[first], delimiter), swallowed_to=last + 1)
                position = first + 1
                break
            yield _Record(first + 1, last + 1, fields)
        else:
            return


def _lenient_records(lines: list[str], delimiter: str, position: int) -> Iterator[tuple[int, int, list[str] | None]]:
    """``(first, last, fields)`` per record as the csv module reads it from line index ``position`` on.

    ``fields`` is None where the csv module gives up: a field over its size limit (128 KiB), which
    an unbalanced quote reading the rest of a large file into one field reaches.
    """
    reader = csv.reader(itertools.islice(lines, position, None), delimiter=delimiter)
    first = position
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield first, position + reader.line_num - 1, None
            return
        last = position + reader.line_num - 1  # 0-based index of the record's last line
        yield first, last, fields
        first = last + 1


def _merges_rows(lines: list[str], first: int, last: int, fields: list[str], delimiter: str, width: int) -> bool:
    """Whether the csv module read an unbalanced quote on line ``first`` as a field running to line ``last``.

    A legit quoted field with line breaks closes properly (strict parsing accepts it), gives a
    row of the header's width, and none of the lines it continues onto is a full row on its own.
    """
    if first == last:  # a single line ends inside a quote only at the end of the file
        return last == len(lines) - 1 and _unclosed_quote(lines[last].rstrip("\r\n"), delimiter) is not None
    if len(fields) != width or not _strictly_one_record(lines[first:last + 1], delimiter):
        return True
    return width > 1 and any(len(_read_alone(line, delimiter)) == width for line in lines[first + 1:last + 1])


def _strictly_one_record(lines: list[str], delimiter: str) -> bool:
    try:
        return len(list(csv.reader(lines, delimiter=delimiter, strict=True))) == 1
    except csv.Error:
        return False


def _unclosed_quote(text: str, delimiter: str) -> int | None:
    """Where a quote opens a field that does not close on this line (the csv module's rules), or None."""
    quoted, opened_at, field_start, position = False, None, True, 0
    while position < len(text):
        character = text[position]
        if quoted:
            if character == _QUOTE and text.startswith(_QUOTE, position + 1):
                position += 1  # "" is a quote inside the field
            elif character == _QUOTE:
                quoted = False
        elif character == _QUOTE and field_start:
            quoted, opened_at = True, position
        field_start = not quoted and character == delimiter
        position += 1
    return opened_at if quoted else None


def _read_alone(line: str, delimiter: str) -> list[str]:
    """One physical line as fields; a quote that opens a field and never closes is read as a plain character."""
    text = line.rstrip("\r\n")
    opened_at = _unclosed_quote(text, delimiter)
    if opened_at is None:
        return next(csv.reader([text], delimiter=delimiter), [])
    before = next(csv.reader([text[:opened_at]], delimiter=delimiter), []) if opened_at else [""]
    return before[:-1] + text[opened_at:].split(delimiter)  # before's last field is the empty one the quote opens


def _fit_fields(fields: list[str], expected: int, delimiter: str) -> list[str]:
    """Join surplus fields into the last column (they were split on an unquoted delimiter), pad short rows."""
    if len(fields) > expected:
        return [*fields[: expected - 1], delimiter.join(fields[expected - 1:])]
    return fields + [""] * (expected - len(fields))


def delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))
