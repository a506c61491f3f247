"""Shared fixtures: a service on a fresh file in a temporary folder."""

from __future__ import annotations

import pytest

from adk_lite import DatabaseSessionService


@pytest.fixture
def db_path(tmp_path):
    """Path of a database file that does not exist yet."""
    return str(tmp_path / "sessions.sqlite3")


@pytest.fixture
def svc(db_path):
    """A sync service on a new file, closed after the test."""
    service = DatabaseSessionService(db_path)
    yield service
    service.close()


def file_bytes(path: str) -> bytes:
    """The main database file's bytes (for 'nothing was written' checks)."""
    with open(path, "rb") as fh:
        return fh.read()
