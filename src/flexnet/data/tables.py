"""Tables of numbers from CSV files: what the first lines say, then every row in bounded memory.

A table is read in three steps:

1. **sniff** (:func:`sniff_csv`): the first lines say the delimiter (``,`` ``;``
   tab ``|``), whether the first row is a header and whether the labels are
   numbers or names. What was guessed is kept in a :class:`CsvLayout`, so the
   command line can say it back.
2. **count**: the line breaks in the file bound its rows, so the feature array
   is allocated once at its final size. Pages never written cost no memory, and
   the unused tail is handed back at the end.
3. **parse**: a block of rows at a time, into that array. pyarrow's CSV reader
   does it where it is installed (``pip install "flexnet[tables]"``), NumPy's
   ``loadtxt`` on blocks of lines otherwise. Peak memory is the final arrays
   plus a few blocks, whichever reader runs.

Both readers give the same arrays and the same messages. pyarrow only ever
answers for a file NumPy reads the same way: at the first cell it does not like
(a ragged row, a missing value, a word among numbers) the NumPy reader reads
the file again and gives its own answer. A block NumPy cannot read is read once
more cell by cell (:func:`_explain`) to name the line, the column and the cell.

The rules, the same for both readers:

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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..nn.checks import as_float_dtype
from .errors import DataFileError

#: Cells that mean "no value" (compared in lower case).
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
#: The delimiters tried, in order of preference, when none is given.
DELIMITERS = (",", ";", "\t", "|")
#: What :func:`sniff_csv` reads: this many rows, at most this many characters.
SAMPLE_ROWS, SAMPLE_CHARS = 50, 1 << 20
#: Characters of text per block of rows the NumPy reader parses at once.
BLOCK_CHARS = 1 << 20
#: Environment variable that picks the reader: ``numpy`` or ``pyarrow``.
ENGINE_ENV = "FLEXNET_CSV_ENGINE"

QUOTE = '"'
# A number as both readers parse it: ASCII digits, an optional sign, point and
# exponent, spaces or tabs around; inf and nan are numbers, refused later as not finite.
_NUMBER = re.compile(r"[ \t]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)[ \t]*",
                     re.ASCII | re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"[ \t]*[+-]?\d+,\d+[ \t]*")


def is_number(cell: str) -> bool:
    """Whether ``cell`` is a number as the CSV readers parse it (see the module's rules)."""
    return _NUMBER.fullmatch(cell) is not None


def _is_blank(text: str) -> bool:
    return not text or text.isspace()


def _show(delimiter: str) -> str:
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
            return f"is the delimiter {_show(other)}? (pass --delimiter {_show(other)})"
        return f"a table needs its cells separated by {_show(self.delimiter)} (or pass --delimiter)"

    def describe(self, label: int | None = None) -> str:
        """One line for a summary: ``header row (guessed), delimiter ',' (guessed), label column 'y'``."""
        def how(guessed):
            return "guessed" if guessed else "given"
        head = "header row" if self.header else "no header row"
        text = f"{head} ({how(self.header_guessed)}), delimiter {_show(self.delimiter)} ({how(self.delimiter_guessed)})"
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
    _check_text(path)
    records: list[tuple[int, str]] = []
    chars = 0
    with _open_text(path) as f:
        try:
            for line, text in _records(f, 1):
                if _is_blank(text):
                    continue
                records.append((line, text))
                chars += len(text)
                if len(records) > SAMPLE_ROWS or chars > SAMPLE_CHARS:
                    break
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
    if not records:
        raise DataFileError(f"{path}: the file holds no rows, only blank lines")
    given_delimiter = delimiter is not None
    if given_delimiter:
        delimiter = check_delimiter(delimiter)
    else:
        delimiter = _guess_delimiter([t for _, t in records]) or ","
    rows = [_split(text, delimiter) for _, text in records]
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


def _split(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter, quotechar=QUOTE), [])


def _guess_delimiter(texts: list[str], exclude: str | None = None) -> str | None:
    """The delimiter that splits every row into the same number (> 1) of cells, most of them
    numbers; failing that (a ragged row among the first), the one that splits the first row most."""
    best, best_key = None, None
    for d in DELIMITERS:
        if d == exclude or d not in texts[0]:
            continue
        rows = [_split(t, d) for t in texts]
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


def _open_text(path: Path):
    # utf-8-sig drops a byte-order mark; universal newlines read CRLF and CR as LF.
    return open(path, encoding="utf-8-sig", newline=None)


def _records(lines, first_line: int):
    """Physical lines -> ``(line number, text)`` of each row; a quoted cell may span lines."""
    buf: list[str] = []
    start, quotes = first_line, 0
    for i, line in enumerate(lines, start=first_line):
        if not buf:
            start = i
        buf.append(line)
        if QUOTE in line:
            quotes += line.count(QUOTE)
        if quotes % 2 == 0:
            yield start, (line if len(buf) == 1 else "".join(buf))
            buf, quotes = [], 0
    if buf:  # an unclosed quote runs to the end of the file
        yield start, "".join(buf)


def _check_text(path: Path) -> None:
    """Refuse at once what is not UTF-8 text: an empty file, a binary file, UTF-16."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head:
        raise DataFileError(f"{path}: the file is empty (0 bytes); expected a CSV table")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataFileError(f"{path}: UTF-16 text; save the CSV as UTF-8")
    if b"\0" in head:
        kinds = {b"PK": "a zip archive (an .npz file?)", b"\x93NUMPY": "a NumPy .npy file",
                 b"\x1f\x8b": "gzip-compressed data; decompress it first", b"\x89PNG": "a PNG image"}
        what = next((v for k, v in kinds.items() if head.startswith(k)), "binary data")
        raise DataFileError(f"{path}: not a CSV text file: it holds {what}")


def _not_utf8(path: Path) -> DataFileError:
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


# -- the table read --------------------------------------------------------------


@dataclass
class Table:
    """A CSV file read: features, raw labels, and how the file was read.

    ``labels`` holds numbers (float64) when the label column holds numbers,
    else the code of each row's name in ``label_names`` (int64, names in order
    of first appearance). Both are None without a label column.

    Shapes:
        X: (N, columns - 1) of the dtype asked for; labels: (N,).
    """

    layout: CsvLayout
    X: np.ndarray
    labels: np.ndarray | None
    label_names: list[str] | None
    label_column: int | None
    engine: str

    @property
    def path(self) -> Path:
        return self.layout.path

    @property
    def label_name(self) -> str | None:
        """The label column's header name (None without a header or a label column)."""
        if self.label_column is None or not self.layout.header:
            return None
        return self.layout.columns[self.label_column]

    def line_of(self, row: int) -> int:
        """The line of the file that holds data row ``row`` (reads the file again: for messages)."""
        return _line_of(self.layout, row)

    def where(self, row: int) -> str:
        """``data.csv line 7``: where data row ``row`` is, for a message."""
        return f"{self.path} line {self.line_of(row)}"

    def describe(self) -> str:
        return self.layout.describe(self.label_column)


def read_table(path, label=-1, *, header: bool | None = None, delimiter: str | None = None, dtype="float32",
               engine: str | None = None) -> Table:
    """Read a CSV table of numbers with one label column, in bounded memory.

    Args:
        path: the CSV file.
        label: the label column by name or index (negative from the end;
            default the last); None reads features only.
        header, delimiter: given, or None to guess (see :func:`sniff_csv`).
        dtype: float32 (default) or float64 for the features.
        engine: ``"pyarrow"`` or ``"numpy"``; None takes ``$FLEXNET_CSV_ENGINE``,
            else pyarrow when it is installed. Both give the same result.

    Returns:
        A :class:`Table`.

    Raises:
        DataFileError: naming the file, line and column of a ragged row, a
            missing value, text among numbers or a number that does not fit.
        ImportError: ``engine="pyarrow"`` without pyarrow installed.
    """
    dtype = as_float_dtype(dtype, "read_csv(dtype)")
    layout = sniff_csv(path, header=header, delimiter=delimiter, label=label)
    label_col = layout.label_index(label)
    labels_are_text = False
    if label_col is not None:
        first = layout.sample[0][label_col] if label_col < len(layout.sample[0]) else ""
        if first.strip().lower() in MISSING:
            raise DataFileError(f"{layout.path} line {layout.data_line}, {layout.column(label_col)}: missing label")
        labels_are_text = not is_number(first)
    engine = choose_engine(engine)
    result = None
    if engine == "pyarrow" and layout.first_line == 1 and layout.data_line == 1 + layout.header:
        result = _read_pyarrow(layout, label_col, labels_are_text, dtype)
    if result is None:
        engine = "numpy"
        result = _read_numpy(layout, label_col, labels_are_text, dtype)
    X, labels, names = result
    table = Table(layout, X, labels, names, label_col, engine)
    if names is not None:
        _check_names(table)
    return table


def choose_engine(engine: str | None) -> str:
    """``"pyarrow"`` or ``"numpy"``: the one asked for, else ``$FLEXNET_CSV_ENGINE``, else the fastest installed."""
    asked = engine or os.environ.get(ENGINE_ENV) or None
    if asked not in (None, "numpy", "pyarrow"):
        where = "engine" if engine else f"${ENGINE_ENV}"
        raise ValueError(f"read_csv: {where} must be 'numpy' or 'pyarrow', got {asked!r}")
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        if asked == "pyarrow":
            raise ImportError('reading CSV with pyarrow needs it installed: pip install "flexnet[tables]"') from None
        return "numpy"
    return asked or "pyarrow"


def _count_rows(path: Path) -> int:
    """An upper bound on the rows: the line breaks (CR where there is no LF), plus one."""
    lf = cr = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            lf += block.count(b"\n")
            cr += block.count(b"\r")
    return (lf or cr) + 1


class _Arrays:
    """The final arrays, allocated once at the bound on rows and cut to the rows read."""

    def __init__(self, bound: int, n_features: int, dtype: np.dtype, label: bool, labels_are_text: bool):
        self.X = np.empty((bound, n_features), dtype=dtype)
        self.y = None if not label else np.empty(bound, np.int64 if labels_are_text else np.float64)
        self.n = 0

    def room(self, m: int) -> None:
        if self.n + m > len(self.X):  # more rows than line breaks: CR and LF both in use
            grow = max(m, len(self.X) // 2)
            self.X = np.concatenate([self.X, np.empty((grow,) + self.X.shape[1:], self.X.dtype)])
            if self.y is not None:
                self.y = np.concatenate([self.y, np.empty(grow, self.y.dtype)])

    def finish(self):
        """The arrays cut to the rows read; the unused tail goes back to the allocator."""
        for name in ("X", "y"):
            a = getattr(self, name)
            if a is not None and len(a) != self.n:
                a.resize((self.n,) + a.shape[1:], refcheck=False)
        return self.X, self.y


class _Names:
    """Text labels -> codes, in order of first appearance; raw cells stripped of spaces."""

    def __init__(self):
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.raw: dict[str, int] = {}

    def code(self, cell: str) -> int:
        code = self.raw.get(cell)
        if code is None:
            name = cell.strip()
            code = self.index.setdefault(name, len(self.index))
            if code == len(self.names):
                self.names.append(name)
            self.raw[cell] = code
        return code


def _read_numpy(layout: CsvLayout, label_col, labels_are_text: bool, dtype):
    """The reader that needs only NumPy: ``loadtxt`` on blocks of lines, into the final array."""
    n_cols = layout.n_columns
    features = _feature_slice(n_cols, label_col)
    out = _Arrays(_count_rows(layout.path), n_cols - (label_col is not None), dtype, label_col is not None,
                  labels_are_text)
    names = _Names() if labels_are_text else None
    converters = {label_col: names.code} if names is not None else None
    with _open_text(layout.path) as f:
        try:
            for _ in range(layout.data_line - 1):
                f.readline()
            line = layout.data_line
            for lines in _blocks(f):
                rows = _rows_of(lines)
                if rows:
                    try:
                        block = np.loadtxt(rows, delimiter=layout.delimiter, quotechar=QUOTE, comments=None,
                                           dtype=np.float64, ndmin=2, converters=converters)
                    except ValueError as exc:
                        _explain(layout, lines, line, label_col, labels_are_text, dtype, str(exc))
                    if block.shape[1] != n_cols:
                        _explain(layout, lines, line, label_col, labels_are_text, dtype, "ragged rows")
                    m = len(block)
                    out.room(m)
                    X = out.X[out.n:out.n + m]
                    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: checked below
                        X[...] = block[:, features]
                    ok = bool(np.isfinite(X).all())
                    if label_col is not None:
                        out.y[out.n:out.n + m] = block[:, label_col]
                        ok = ok and (labels_are_text or bool(np.isfinite(block[:, label_col]).all()))
                    if not ok:
                        _explain(layout, lines, line, label_col, labels_are_text, dtype, "values not finite")
                    out.n += m
                line += len(lines)
        except UnicodeDecodeError:
            raise _not_utf8(layout.path) from None
    X, y = out.finish()
    return X, y, (names.names if names is not None else None)


def _feature_slice(n_cols: int, label_col):
    """The feature columns: a slice (a view) where the label is first or last."""
    if label_col is None:
        return slice(None)
    if label_col == n_cols - 1:
        return slice(0, n_cols - 1)
    if label_col == 0:
        return slice(1, None)
    return [j for j in range(n_cols) if j != label_col]


def _blocks(f):
    """Blocks of about :data:`BLOCK_CHARS` characters of whole lines, never ending inside quotes."""
    while lines := f.readlines(BLOCK_CHARS):
        quotes = sum(line.count(QUOTE) for line in lines) if any(QUOTE in line for line in lines) else 0
        while quotes % 2:
            more = f.readline()
            if not more:
                break
            lines.append(more)
            quotes += more.count(QUOTE)
        yield lines


def _rows_of(lines: list[str]) -> list[str]:
    """The rows among ``lines``, blank ones left out."""
    if any(QUOTE in line for line in lines):
        return [text for _, text in _records(lines, 0) if not _is_blank(text)]
    return [line for line in lines if not _is_blank(line)]


def _explain(layout: CsvLayout, lines, first_line: int, label_col, labels_are_text: bool, dtype, why: str):
    """Read a block that failed cell by cell, and raise the error for its first bad cell."""
    path, n = layout.path, layout.n_columns
    for line, text in _records(lines, first_line):
        if _is_blank(text):
            continue
        cells = _split(text, layout.delimiter)
        if len(cells) != n:
            hint = f" (the line holds no {_show(layout.delimiter)})" if len(cells) == 1 else ""
            raise DataFileError(f"{path} line {line}: expected {n} cells (as in line {layout.first_line}), "
                                f"got {len(cells)}{hint}")
        for j, cell in enumerate(cells):
            where = f"{path} line {line}, {layout.column(j)}"
            missing = cell.strip().lower() in MISSING
            if j == label_col:
                if missing:
                    raise DataFileError(f"{where}: missing label")
                if not labels_are_text and not is_number(cell):
                    first = layout.sample[0][label_col].strip()
                    raise DataFileError(
                        f"{where}: label {cell.strip()!r} is not a number, but the labels before it are "
                        f"(line {layout.data_line}: {first!r}); labels must be all class ids (0, 1, 2, ...) "
                        "or all names")
                if not labels_are_text and not np.isfinite(float(cell)):
                    raise DataFileError(f"{where}: label {cell.strip()!r} is not a finite number")
                continue
            if missing:
                raise DataFileError(f"{where}: missing value {cell!r}; fill it in or drop the row")
            if not is_number(cell):
                raise DataFileError(f"{where}: expected a number, got {cell!r}{_number_hint(cell)}")
            with np.errstate(over="ignore"):
                value = dtype.type(float(cell))
            if not np.isfinite(value):
                raise DataFileError(f"{where}: {cell.strip()!r} is not a finite {dtype.name} value")
    last = first_line + len(lines) - 1
    raise DataFileError(f"{path} lines {first_line}-{last}: cannot read the rows ({why})")


def _number_hint(cell: str) -> str:
    if _DECIMAL_COMMA.fullmatch(cell):
        return "; write decimals with a point (1.5, not 1,5)"
    if "_" in cell and is_number(cell.replace("_", "")):
        return "; digits grouped with '_' are not read as a number"
    return ""


def _read_pyarrow(layout: CsvLayout, label_col, labels_are_text: bool, dtype):
    """pyarrow's streaming CSV reader into the final array; None when NumPy must decide."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    n_cols = layout.n_columns
    names = [f"c{j}" for j in range(n_cols)]
    types = {name: pa.float64() for name in names}
    if labels_are_text:
        types[names[label_col]] = pa.string()
    features = [j for j in range(n_cols) if j != label_col]
    out = _Arrays(_count_rows(layout.path), len(features), dtype, label_col is not None, labels_are_text)
    codes = _Names() if labels_are_text else None
    try:
        reader = pacsv.open_csv(
            layout.path,
            read_options=pacsv.ReadOptions(skip_rows=int(layout.header), column_names=names, block_size=1 << 20),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter, quote_char=QUOTE, double_quote=True,
                                             escape_char=False, newlines_in_values=True, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False),
        )
        for batch in reader:
            m = batch.num_rows
            out.room(m)
            # Columns into the rows of a block, then the block into the array: two
            # contiguous copies, much faster than writing each column across the rows.
            block = np.empty((len(features), m), dtype=dtype)  # (features, rows)
            with np.errstate(over="ignore", invalid="ignore"):  # too large for float32: checked below
                for k, j in enumerate(features):
                    block[k] = batch.column(j).to_numpy()
            if not np.isfinite(block).all():
                return None
            out.X[out.n:out.n + m] = block.T
            if label_col is not None:
                column = batch.column(label_col)
                if labels_are_text:
                    encoded = column.dictionary_encode()
                    lookup = np.array([codes.code(s) for s in encoded.dictionary.to_pylist()], dtype=np.int64)
                    out.y[out.n:out.n + m] = lookup[encoded.indices.to_numpy()]
                else:
                    y = column.to_numpy()
                    if not np.isfinite(y).all():
                        return None
                    out.y[out.n:out.n + m] = y
            out.n += m
    except (pa.ArrowException, ValueError):
        return None  # the NumPy reader reads the file again and names what is wrong
    X, y = out.finish()
    return X, y, (codes.names if codes is not None else None)


def _check_names(table: Table) -> None:
    """Text labels: none missing, none holding a line break, not numbers mixed with names."""
    layout, names = table.layout, table.label_names
    col = layout.column(table.label_column)
    for code, name in enumerate(names):
        problem = None
        if name.lower() in MISSING:
            problem = "missing label"
        elif "\n" in name or "\r" in name:
            problem = f"label {name!r} holds a line break"
        elif is_number(name):
            problem = (f"label {name!r} is a number, but the labels before it are names (line "
                       f"{layout.data_line}: {names[0]!r}); labels must be all class ids (0, 1, 2, ...) "
                       "or all names")
        if problem:
            row = int(np.argmax(table.labels == code))
            raise DataFileError(f"{table.where(row)}, {col}: {problem}")


def _line_of(layout: CsvLayout, row: int) -> int:
    with _open_text(layout.path) as f:
        for _ in range(layout.data_line - 1):
            f.readline()
        r = 0
        for line, text in _records(f, layout.data_line):
            if _is_blank(text):
                continue
            if r == row:
                return line
            r += 1
    raise IndexError(f"{layout.path}: no data row {row}")
