"""Tables of numbers from CSV files, every row read in bounded memory.

A table is read in three steps:

1. **sniff** (:func:`~flexnet.data.csv_layout.sniff_csv`): the first lines say
   the delimiter, whether the first row is a header and whether the labels
   are numbers or names (the rules rows follow are in :mod:`flexnet.data.csv_layout`).
2. **bound**: the line breaks in the file (for pyarrow: the file's size) bound
   its rows, so the feature array is allocated once. Pages never written cost no
   memory, and the unused tail is handed back at the end.
3. **parse**: a block of rows at a time, into that array. pyarrow's CSV reader
   does it where it is installed (``pip install "flexnet[tables]"``), NumPy's
   ``loadtxt`` on blocks of lines otherwise. Peak memory is the final arrays
   plus a few blocks, whichever reader runs.

Both readers give the same arrays and the same messages. pyarrow only ever
answers for a file NumPy reads the same way: at the first cell it does not like
(a ragged row, a missing value, a word among numbers) the NumPy reader reads
the file again and gives its own answer. A block NumPy cannot read is read once
more cell by cell (:func:`_explain`) to name the line, the column and the cell.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..nn.checks import as_float_dtype
from .csv_layout import (
    MISSING,
    QUOTE,
    CsvLayout,
    is_blank,
    is_number,
    not_utf8,
    open_text,
    quote_open_after,
    records_of,
    show_delimiter,
    sniff_csv,
    split_row,
)
from .errors import DataFileError

#: Characters of text per block of rows the NumPy reader parses at once.
BLOCK_CHARS = 1 << 20
#: Environment variable that picks the reader: ``numpy`` or ``pyarrow``.
ENGINE_ENV = "FLEXNET_CSV_ENGINE"

_DECIMAL_COMMA = re.compile(r"[ \t]*[+-]?\d+,\d+[ \t]*")


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
               engine: str | None = None, sink=None) -> Table:
    """Read a CSV table of numbers with one label column, in bounded memory.

    Args:
        path: the CSV file.
        label: the label column by name or index (negative from the end;
            default the last); None reads features only.
        header, delimiter: given, or None to guess (see :func:`sniff_csv`).
        dtype: float32 (default) or float64 for the features.
        engine: ``"pyarrow"`` or ``"numpy"``; None takes ``$FLEXNET_CSV_ENGINE``,
            else pyarrow when it is installed. Both give the same result.
        sink: where the rows go: called as ``sink(bound, n_features, dtype,
            label, labels_are_text)`` it returns an object like ``_Arrays``
            (``X`` and ``y`` of ``bound`` rows, ``room``, ``n``, ``finish``);
            :mod:`flexnet.data.streaming` passes one whose ``X`` maps a file.

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
    if label_col is not None and label_col < len(layout.sample[0]):  # (a ragged first row: the reader says so)
        first = layout.sample[0][label_col]
        if first.strip().lower() in MISSING:
            raise DataFileError(f"{layout.path} line {layout.data_line}, {layout.column(label_col)}: missing label")
        labels_are_text = not is_number(first)
    engine = choose_engine(engine)
    result = None
    if engine == "pyarrow" and layout.first_line == 1 and layout.data_line == 1 + layout.header:
        result = _read_pyarrow(layout, label_col, labels_are_text, dtype, sink or _Arrays)
    if result is None:
        engine = "numpy"
        result = _read_numpy(layout, label_col, labels_are_text, dtype, sink or _Arrays)
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


def count_rows(path: Path) -> int:
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


def _read_numpy(layout: CsvLayout, label_col, labels_are_text: bool, dtype, sink=_Arrays):
    """The reader that needs only NumPy: ``loadtxt`` on blocks of lines, into the final array."""
    n_cols = layout.n_columns
    features = _feature_slice(n_cols, label_col)
    out = sink(count_rows(layout.path), n_cols - (label_col is not None), dtype, label_col is not None,
                  labels_are_text)
    names = _Names() if labels_are_text else None
    converters = {label_col: names.code} if names is not None else None
    with open_text(layout.path) as f:
        try:
            for _ in range(layout.data_line - 1):
                f.readline()
            line = layout.data_line
            for lines in _blocks(f, layout.delimiter):
                rows = _rows_of(lines, layout.delimiter)
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
            raise not_utf8(layout.path) from None
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


def _blocks(f, delimiter: str):
    """Blocks of about :data:`BLOCK_CHARS` characters of whole lines, never ending inside a quoted cell."""
    while lines := f.readlines(BLOCK_CHARS):
        in_quotes = False
        for line in lines:
            if QUOTE in line:
                in_quotes = quote_open_after(line, delimiter, in_quotes)
        while in_quotes and (more := f.readline()):
            lines.append(more)
            in_quotes = quote_open_after(more, delimiter, in_quotes)
        yield lines


def _rows_of(lines: list[str], delimiter: str) -> list[str]:
    """The rows among ``lines``, blank ones left out."""
    if any(QUOTE in line for line in lines):
        return [text for _, text in records_of(lines, 0, delimiter) if not is_blank(text)]
    return [line for line in lines if not is_blank(line)]


def _explain(layout: CsvLayout, lines, first_line: int, label_col, labels_are_text: bool, dtype, why: str):
    """Read a block that failed cell by cell, and raise the error for its first bad cell."""
    path, n = layout.path, layout.n_columns
    for line, text in records_of(lines, first_line, layout.delimiter):
        if is_blank(text):
            continue
        cells = split_row(text, layout.delimiter)
        if len(cells) != n:
            hint = f" (the line holds no {show_delimiter(layout.delimiter)})" if len(cells) == 1 else ""
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


def _read_pyarrow(layout: CsvLayout, label_col, labels_are_text: bool, dtype, sink=_Arrays):
    """pyarrow's streaming CSV reader into the final array; None when NumPy must decide."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    n_cols = layout.n_columns
    names = [f"c{j}" for j in range(n_cols)]
    types = {name: pa.float64() for name in names}
    if labels_are_text:
        types[names[label_col]] = pa.string()
    features = [j for j in range(n_cols) if j != label_col]
    # A row pyarrow reads holds a character per number, n - 1 delimiters and a line break:
    # that bounds the rows without a pass over the file (rows never read are never touched).
    bound = os.path.getsize(layout.path) // (2 * n_cols - 1) + 1 if n_cols > 1 else count_rows(layout.path)
    out = sink(bound, len(features), dtype, label_col is not None, labels_are_text)
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
                    block[k] = _values(batch.column(j), np.float64)
            if not np.isfinite(block).all():
                return None
            out.X[out.n:out.n + m] = block.T
            if label_col is not None:
                column = batch.column(label_col)
                if labels_are_text:
                    encoded = column.dictionary_encode()
                    lookup = np.array([codes.code(s) for s in encoded.dictionary.to_pylist()], dtype=np.int64)
                    out.y[out.n:out.n + m] = lookup[_values(encoded.indices, np.int32)]
                else:
                    y = _values(column, np.float64)
                    if not np.isfinite(y).all():
                        return None
                    out.y[out.n:out.n + m] = y
            out.n += m
    except (pa.ArrowException, ValueError):
        return None  # the NumPy reader reads the file again and names what is wrong
    X, y = out.finish()
    return X, y, (codes.names if codes is not None else None)


def _values(array, dtype) -> np.ndarray:
    """A pyarrow array without nulls as a NumPy view of its data buffer (``to_numpy``
    would import pandas, a second's worth of modules, on its first call)."""
    if array.null_count:
        raise ValueError("nulls")  # never with null_values=[]; NumPy reads the file instead
    dtype = np.dtype(dtype)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


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
    with open_text(layout.path) as f:
        for _ in range(layout.data_line - 1):
            f.readline()
        r = 0
        for line, text in records_of(f, layout.data_line, layout.delimiter):
            if is_blank(text):
                continue
            if r == row:
                return line
            r += 1
    raise IndexError(f"{layout.path}: no data row {row}")
