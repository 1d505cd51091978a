"""The one error of the dataset layer."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset that cannot be read or written as asked; the message is one line naming the
    path or field and what was expected."""
