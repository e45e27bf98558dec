"""The error every data reader raises for a file it cannot read."""


class DataFileError(ValueError):
    """A data file that cannot be read as what it claims to be.

    The message names the file and, where it can, the line, column and cell.
    """
