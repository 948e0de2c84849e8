"""Read a labels CSV's records without losing any silently: encoding, delimiter, bad rows, stray quotes.

Real catalogue exports come in UTF-8 (with or without a byte-order mark) or Windows cp1252, with
commas, semicolons or tabs, with unquoted commas in a free-text column, and now and then with one
unbalanced ``"`` that would make the csv module read every following line into a single field.
Each such problem is detected, named by line and fixed, skipped or refused (``on_bad_rows``);
every physical line of the file is accounted for (header, rows, blank lines, quoted line breaks).
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

BAD_ROW_ACTIONS = ("recover", "skip", "raise")
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


class CatalogError(ValueError):
    """A labels CSV or image folder that cannot give a catalogue; the message names the file, line or column and the fix."""


@dataclass
class BadRow:
    """A CSV record that could not be read as it stands: a wrong field count or an unbalanced quote."""

    line: int
    fields: int
    expected: int
    action: str  # "recovered" or "skipped"
    swallowed_lines: tuple[int, int] | None = None  # lines an unbalanced quote would have read into one field

    @property
    def reason(self) -> str:
        if self.swallowed_lines:
            first, last = self.swallowed_lines
            fix = "quote read as a plain character" if self.action == "recovered" else "left out"
            return f"unbalanced quote (\") would swallow lines {first}-{last} into one field: {fix}"
        if self.fields > self.expected:
            fix = "surplus fields joined into the last column" if self.action == "recovered" else "left out"
        else:
            fix = "missing trailing fields left empty" if self.action == "recovered" else "left out"
        return f"{self.fields} fields, expected {self.expected}: {fix}"


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
    blank_lines: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Data records found, including the ones left out as malformed."""
        return len(self.records) + sum(row.action == "skipped" for row in self.bad_rows)


def read_records(path: Path, on_bad_rows: str = "recover") -> CsvRecords:
    """Decode ``path``, detect its delimiter and parse its records, fixing or dropping malformed ones."""
    text, encoding, note = _decode(path)
    lines = list(io.StringIO(text, newline=""))  # splits on \n, \r\n and \r, keeping the line ends
    if not any(line.strip() for line in lines):
        raise CatalogError(f"{path} is empty: expected a header line naming the columns (e.g. id,subCategory,"
                           "articleType,...) and one row per product")
    delimiter = _detect_delimiter(lines)
    parsed = CsvRecords(header=[], encoding=encoding, delimiter=delimiter, line_count=len(lines),
                        notes=[note] if note else [])
    rows = _physical_records(lines, delimiter)
    for line, fields, last_line in rows:
        if _blank(fields):
            parsed.blank_lines += 1
            continue
        if last_line > line:
            raise CatalogError(f"{path} line {line}: the header has an unbalanced quote (\") that runs to line "
                               f"{last_line}; close or remove it")
        parsed.header = [name.strip() for name in fields]
        break
    width = len(parsed.header)
    rows = _physical_records(lines, delimiter, start=line, width=width)
    for line, fields, last_line, swallowed in rows:
        if _blank(fields):
            parsed.blank_lines += 1
            continue
        if swallowed:
            _check_action(on_bad_rows, path, line, f"an unbalanced quote (\") would read lines {line}-{last_line} "
                                                  f"into one field — close or remove the quote")
            parsed.bad_rows.append(BadRow(line, len(fields), width, _ACTIONS[on_bad_rows], (line, last_line)))
            if on_bad_rows == "skip":
                continue
        elif len(fields) != width:
            _check_action(on_bad_rows, path, line, f"{len(fields)} fields, expected {width} — quote the "
                                                  f"{parsed.header[-1]!r} column")
            parsed.bad_rows.append(BadRow(line, len(fields), width, _ACTIONS[on_bad_rows]))
            if on_bad_rows == "skip":
                continue
        parsed.records.append(_fit_fields(fields, width, delimiter))
        parsed.lines.append(line)
    if not parsed.rows_read:
        raise CatalogError(f"{path} has a header (line 1) but no data rows: add one row per product below it")
    return parsed


def _blank(fields: list[str]) -> bool:
    return not fields or (len(fields) == 1 and not fields[0].strip())


_ACTIONS = {"recover": "recovered", "skip": "skipped", "raise": "raised"}


def _check_action(on_bad_rows: str, path: Path, line: int, problem: str) -> None:
    if on_bad_rows == "raise":
        raise CatalogError(f"{path} line {line}: {problem}, or pass on_bad_rows='recover' (fix the row) or 'skip'")


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


def _physical_records(lines: list[str], delimiter: str, *, start: int = 0, width: int | None = None):
    """Yield ``(line, fields, last line)`` per record from line ``start + 1`` on (``[]`` for a blank line).

    With ``width`` (the header's field count), also a fourth item: True when the record spans
    several lines and one of the continuation lines reads on its own as a full row — the sign of
    an unbalanced quote. Such a record is replaced by its first line read alone (the quote taken
    as a plain character) and reading restarts on the next line, so no row is lost.
    """
    position = start
    while position < len(lines):
        reader = csv.reader(itertools.islice(lines, position, None), delimiter=delimiter)
        consumed, restart = 0, None
        for fields in reader:
            first, last = position + consumed, position + reader.line_num - 1  # 0-based line indices
            consumed = reader.line_num
            if width is None:
                yield first + 1, fields, last + 1
                continue
            if last > first and width > 1 and _looks_like_rows(lines[first + 1:last + 1], delimiter, width):
                yield first + 1, _read_alone(lines[first], delimiter), last + 1, True
                restart = first + 1
                break
            yield first + 1, fields, last + 1, False
        if restart is None:
            return
        position = restart


def _looks_like_rows(lines: list[str], delimiter: str, width: int) -> bool:
    return any(len(_read_alone(line, delimiter)) == width for line in lines)


def _read_alone(line: str, delimiter: str) -> list[str]:
    """One physical line as fields; an opening quote that is never closed is dropped (its text kept)."""
    return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])


def _fit_fields(fields: list[str], expected: int, delimiter: str) -> list[str]:
    """Join surplus fields into the last column (they were split on an unquoted delimiter), pad short rows."""
    if len(fields) > expected:
        return [*fields[: expected - 1], delimiter.join(fields[expected - 1:])]
    return fields + [""] * (expected - len(fields))


def delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))
