"""The error of one case's input, shared by the readers (``read``, ``intensity``)."""

from __future__ import annotations


class CaseError(Exception):
    """A problem with one case's input; the message names the case and the file."""
