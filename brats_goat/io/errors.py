"""The errors of the input: one case's (``CaseError``, shared by the readers ``read``,
``intensity``, ...) and the whole INPUT's (``DiscoveryError``, from ``discover``)."""

from __future__ import annotations


class CaseError(Exception):
    """A problem with one case's input; the message names the case and the file."""


class DiscoveryError(Exception):
    """INPUT as a whole cannot be read as a set of cases: a usage error, no case is run."""
