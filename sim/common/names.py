"""Errors for names that are not known: close matches first, then every valid choice."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnknownNameError(ValueError):
    """A name that is not registered; the message lists the close matches and valid choices."""


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """``" (did you mean a, b?)"`` for up to three close matches of ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), list(valid), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_name(
    kind: str,
    name: object,
    valid: Iterable[str],
    *,
    alternatives: str = "",
    also_close: Iterable[str] = (),
) -> UnknownNameError:
    """``unknown <kind> 'x' (did you mean ...?); valid choices: a, b<alternatives>`` as an error.

    ``alternatives`` is appended to the list of choices (e.g. ``" or a 'module:Class' path"``);
    ``also_close`` are further names offered as close matches (e.g. group names).
    """
    choices = list(valid)
    hint = did_you_mean(name, [*choices, *also_close])
    return UnknownNameError(
        f"unknown {kind} {name!r}{hint}; valid choices: {', '.join(choices)}{alternatives}"
    )
