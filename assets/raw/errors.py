"""The raw layer's error for a source file that cannot be read (apart so that every reader module can raise it)."""


class IngestError(ValueError):
    """A source file that cannot be read; the message names the file and, where known, the row and column."""
