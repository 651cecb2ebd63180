"""The embedded store: one SQLite file in WAL mode, so one control plane needs nothing else.

Writes take the write lock up front (``BEGIN IMMEDIATE``), so a read-modify-write never has to
be retried. Its modules: ``connection`` (opening, the worker thread), ``schema`` (tables and
migrations), ``transaction``, ``cache``, and one per concern: ``events``, ``progress``,
``rollouts``, ``agents``, ``audit``, ``credentials``; ``store`` puts them together.
"""

from transporter.store.sqlite.connection import DEFAULT_TIMEOUT
from transporter.store.sqlite.schema import SCHEMA_VERSION
from transporter.store.sqlite.store import SQLiteStore

__all__ = ["DEFAULT_TIMEOUT", "SCHEMA_VERSION", "SQLiteStore"]
