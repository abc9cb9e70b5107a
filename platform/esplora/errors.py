"""User-facing errors of the platform: the CLI prints them without a traceback."""

from __future__ import annotations


class EsploraError(Exception):
    """A mistake the user can fix (bad argument, missing store, unknown name): says what and why."""


class StoreNotMigrated(EsploraError):
    """The store exists but is not at the code's schema revision."""
