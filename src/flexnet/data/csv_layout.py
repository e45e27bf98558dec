"""CSV files: what the first lines say (delimiter, header, columns), and the rules every row follows.

:func:`sniff_csv` reads the first rows and keeps what it found, given or
guessed, in a :class:`CsvLayout`, so the command line can say it back.
:mod:`flexnet.data.tables` then reads every row by these rules, the same for
both of its readers:

- cells are separated by one delimiter; a cell in double quotes may hold the
  delimiter, doubled quotes and line breaks; spaces and tabs around a number
  are ignored;
- a number is written in ASCII decimal (``3``, ``-0.5``, ``1e-3``, ``.5``);
  ``1_000``, ``0x1F``, ``1,5`` and other scripts' digits are not numbers;
- empty and whitespace-only lines are skipped; every other line is a row, and
  every row has as many cells as the first one;
- the file is UTF-8 (a byte-order mark is allowed); CRLF and CR line ends read
  like LF.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..filesystem import NotARegularFileError, open_regular
from .errors import DataFileError

#: Cells that mean "no value" (compared in lower case).
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
#: The delimiters tried, in order of preference, when none is given.
DELIMITERS = (",", ";", "\t", "|")
#: What :func:`sniff_csv` reads: this many rows, at most this many characters.
SAMPLE_ROWS, SAMPLE_CHARS = 50, 1 << 20

QUOTE = '"'
# A number as both readers parse it: ASCII digits, an optional sign, point and
# exponent, spaces or tabs around; inf and nan are numbers, refused later as not finite.
_NUMBER = re.compile(r"[ \t]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)[ \t]*",
                     re.ASCII | re.IGNORECASE)


def is_number(cell: str) -> bool:
    """Whether ``cell`` is a number as the CSV readers parse it (see the module's rules)."""
    return _NUMBER.fullmatch(cell) is not None


def is_blank(text: str) -> bool:
    return not text or text.isspace()


def show_delimiter(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


# -- step 1: sniff ---------------------------------------------------------------


@dataclass
class CsvLayout:
    """What the first lines of a CSV file say: delimiter, header, columns, kind of labels.

    ``*_guessed`` says whether a setting was guessed (True) or given (False);
    :meth:`describe` puts it in words.
    """

    path: Path
    delimiter: str
    delimiter_guessed: bool
    header: bool
    header_guessed: bool
    columns: list[str]  # the header's names, or "column 1", "column 2", ... without a header
    first_line: int  # the line of the first row (the header, if any)
    data_line: int  # the line of the first data row
    sample: list[list[str]] = field(repr=False)  # the first data rows, split into cells
    texts: list[str] = field(repr=False)  # the first rows (header included) as they are in the file

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def column(self, j: int) -> str:
        """``column 3 (petal_width)``: the column's number from 1 and its name, if it has one."""
        return f"column {j + 1}" + (f" ({self.columns[j]})" if self.header else "")

    def label_index(self, label) -> int | None:
        """The label column's index from a name, an index (negative from the end) or None."""
        path, names, n = self.path, self.columns, self.n_columns
        if label is None:
            return None
        if isinstance(label, str) and not label.strip().lstrip("-").isdigit():
            if not self.header:
                raise DataFileError(
                    f"{path}: label column {label!r} given by name, but the file has no header row; "
                    "give the label column by index instead (e.g. --label -1), or --header if the "
                    "first row holds the column names")
            if label not in names:
                shown = ", ".join(names[:20]) + (", ..." if n > 20 else "")
                raise DataFileError(f"{path}: no column named {label!r}; the columns are {shown}")
            if names.count(label) > 1:
                raise DataFileError(f"{path}: {names.count(label)} columns are named {label!r}; "
                                    "give the label column by index")
            return names.index(label)
        index = int(label)
        if not -n <= index < n:
            raise DataFileError(f"{path}: label column {index} is out of range for {n} columns")
        if n == 1:
            raise DataFileError(f"{path}: one column per line, so no features beside the labels; "
                                f"{self.delimiter_hint()}")
        return index % n

    def other_delimiter(self) -> str | None:
        """A delimiter that would split the first rows into columns, when this one does not."""
        if self.n_columns > 1:
            return None
        return _guess_delimiter(self.texts, exclude=self.delimiter)

    def delimiter_hint(self) -> str:
        other = self.other_delimiter()
        if other is not None:
            return f"is the delimiter {show_delimiter(other)}? (pass --delimiter {show_delimiter(other)})"
        return f"a table needs its cells separated by {show_delimiter(self.delimiter)} (or pass --delimiter)"

    def describe(self, label: int | None = None) -> str:
        """One line for a summary: ``header row (guessed), delimiter ',' (guessed), label column 'y'``."""
        def how(guessed):
            return "guessed" if guessed else "given"
        head = "header row" if self.header else "no header row"
        text = f"{head} ({how(self.header_guessed)}), delimiter {show_delimiter(self.delimiter)} ({how(self.delimiter_guessed)})"
        if label is not None:
            text += f", label {self.column(label)}" if self.header else f", label column {label + 1}"
        return text


def sniff_csv(path, *, header: bool | None = None, delimiter: str | None = None, label=None) -> CsvLayout:
    """Read the first lines of a CSV file: delimiter, header and columns.

    Args:
        path: the CSV file.
        header: whether the first row holds column names; None guesses: yes when
            a column holds numbers below a first cell that is not one, or when
            the first row counts the columns 0, 1, 2, ... (as pandas writes
            unnamed columns) and its label is not one of the labels below.
        delimiter: the cell separator; None guesses among ``, ; tab |`` the one
            that splits the first rows into the same number of cells, most of
            them numbers.
        label: the label column, if known: a name found in the first row
            makes it a header; an index says which cell the guess compares.

    Raises:
        DataFileError: an empty, binary or non-UTF-8 file, or one without data rows.
    """
    path = Path(path)
    if not path.exists():  # what exists but is no regular file, check_text refuses by name
        raise FileNotFoundError(f"read_csv: no such file: {path}")
    check_text(path)
    lines: list[str] = []  # the first lines, blank ones included
    with open_text(path) as f:
        try:
            rows_seen = chars = 0
            while rows_seen <= SAMPLE_ROWS and chars <= SAMPLE_CHARS and (line := f.readline()):
                lines.append(line)
                rows_seen += not is_blank(line)
                chars += len(line)
            given_delimiter = delimiter is not None
            if given_delimiter:
                delimiter = check_delimiter(delimiter)
            else:
                delimiter = _guess_delimiter([t for t in lines if not is_blank(t)] or [""]) or ","
            # A quoted cell left open at the end of the sample runs on: read it whole (within limits).
            in_quotes = False
            for line in lines:
                if QUOTE in line:
                    in_quotes = quote_open_after(line, delimiter, in_quotes)
            while in_quotes and chars <= 2 * SAMPLE_CHARS and (line := f.readline()):
                lines.append(line)
                chars += len(line)
                in_quotes = quote_open_after(line, delimiter, in_quotes)
        except UnicodeDecodeError:
            raise not_utf8(path) from None
    records = [(n, text) for n, text in records_of(lines, 1, delimiter) if not is_blank(text)][:SAMPLE_ROWS + 1]
    if not records:
        raise DataFileError(f"{path}: the file holds no rows, only blank lines")
    rows = [split_row(text, delimiter) for _, text in records]
    given_header = header is not None
    if not given_header:
        header = _guess_header(rows, label)
    first_line = records[0][0]
    if header:
        if len(records) < 2:
            raise DataFileError(f"{path}: the file has a header row but no data rows")
        columns = [c.strip() for c in rows[0]]
        data_line, sample = records[1][0], rows[1:]
    else:
        columns = [f"column {j + 1}" for j in range(len(rows[0]))]
        data_line, sample = first_line, rows
    return CsvLayout(path, delimiter, not given_delimiter, bool(header), not given_header, columns,
                     first_line, data_line, sample[:SAMPLE_ROWS], [t for _, t in records])


def check_delimiter(delimiter: str) -> str:
    """``","``, ``"\\t"`` (or ``"tab"``), ``";"``, ... -> the one character; refuses what cannot be one."""
    names = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|"}
    text = names.get(str(delimiter).lower(), delimiter)
    if not isinstance(text, str) or len(text) != 1 or text in ('"', "\n", "\r") or text.isalnum() \
            or text in ".+-":
        raise ValueError(f"delimiter: expected one character such as ',', ';', '|' or tab, got {delimiter!r}")
    return text


def split_row(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter, quotechar=QUOTE), [])


def _guess_delimiter(texts: list[str], exclude: str | None = None) -> str | None:
    """The delimiter that splits every row into the same number (> 1) of cells, most of them
    numbers; failing that (a ragged row among the first), the one that splits the first row most."""
    best, best_key = None, None
    for d in DELIMITERS:
        if d == exclude or d not in texts[0]:
            continue
        rows = [split_row(t, d) for t in texts]
        consistent = len({len(r) for r in rows}) == 1
        numbers = sum(is_number(c) for r in rows for c in r) if consistent else 0
        key = (consistent, numbers, len(rows[0]))
        if len(rows[0]) > 1 and (best_key is None or key > best_key):
            best, best_key = d, key
    return best


def _guess_header(rows: list[list[str]], label) -> bool:
    first, rest = rows[0], rows[1:]
    if isinstance(label, str) and label in (c.strip() for c in first):
        return True  # the label column given by name, and the first row names it
    if not rest:
        return not all(is_number(c) for c in first)
    n = len(first)
    for j in range(n):
        column = [r[j] for r in rest if j < len(r)]
        if len(column) == len(rest) and all(is_number(c) for c in column) and not is_number(first[j]):
            return True  # a name above a column of numbers
    if n >= 2 and [c.strip() for c in first] == [str(j) for j in range(n)]:
        k = int(label) if isinstance(label, int) and -n <= label < n else -1
        labels = {r[k].strip() for r in rest if len(r) == n}
        return first[k].strip() not in labels  # 0,1,...,64 above labels 0..9: column numbers
    return False


def open_text(path: Path):
    # utf-8-sig drops a byte-order mark; universal newlines read CRLF and CR as LF.
    return open(path, encoding="utf-8-sig", newline=None)


def records_of(lines, first_line: int, delimiter: str):
    """Physical lines -> ``(line number, text)`` of each row; a quoted cell may span lines."""
    buf: list[str] = []
    start, in_quotes = first_line, False
    for i, line in enumerate(lines, start=first_line):
        if not buf:
            start = i
        buf.append(line)
        if QUOTE in line:
            in_quotes = quote_open_after(line, delimiter, in_quotes)
        if not in_quotes:
            yield start, (line if len(buf) == 1 else "".join(buf))
            buf = []
    if buf:  # an unclosed quote runs to the end of the file
        yield start, "".join(buf)


def quote_open_after(line: str, delimiter: str, in_quotes: bool = False) -> bool:
    """Whether a quoted cell is open at the end of ``line``, given whether one was at its start.

    The rules of Python's csv module, NumPy's ``loadtxt`` and pyarrow alike: a
    quote opens a cell only at the cell's start (``5"`` is five inches), and
    inside a quoted cell ``""`` is one quote.
    """
    i = line.find(QUOTE)
    while i != -1:
        if in_quotes:
            if line.startswith(QUOTE, i + 1):
                i = line.find(QUOTE, i + 2)  # "" inside quotes
                continue
            in_quotes = False
        elif i == 0 or line[i - 1] == delimiter:
            in_quotes = True
        i = line.find(QUOTE, i + 1)
    return in_quotes


def check_text(path: Path) -> None:
    """Refuse at once what is not UTF-8 text: an empty file, a binary file, UTF-16,
    and what is not a regular file at all (a named pipe, a device, ``/proc``)."""
    try:
        with open_regular(path, "rb") as f:
            head = f.read(1 << 16)
    except NotARegularFileError as exc:
        raise DataFileError(str(exc)) from None
    if not head:
        raise DataFileError(f"{path}: the file is empty (0 bytes); expected a CSV table")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataFileError(f"{path}: UTF-16 text; save the CSV as UTF-8")
    if b"\0" in head:
        kinds = {b"PK": "a zip archive (an .npz file?)", b"\x93NUMPY": "a NumPy .npy file",
                 b"\x1f\x8b": "gzip-compressed data; decompress it first", b"\x89PNG": "a PNG image"}
        what = next((v for k, v in kinds.items() if head.startswith(k)), "binary data")
        raise DataFileError(f"{path}: not a CSV text file: it holds {what}")


def not_utf8(path: Path) -> DataFileError:
    """Name the line and byte of the first bytes that are not UTF-8."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = raw[exc.start:exc.start + 1]
                return DataFileError(f"{path} line {number}: not a UTF-8 text file (byte {byte!r} at column "
                                     f"{exc.start + 1}); save the CSV as UTF-8")
    return DataFileError(f"{path}: not a UTF-8 text file; save the CSV as UTF-8")
