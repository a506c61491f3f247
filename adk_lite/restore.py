"""Restore a database file from a backup (``adk-lite restore BACKUP DB``).

The backup is checked first (:func:`adk_lite.sqlite.verify_copy`: adk_lite's tables,
a schema version this release reads, SQLite's integrity and foreign-key checks).
Then, holding SQLite's EXCLUSIVE lock on the database (:func:`adk_lite.sqlite.exclusive`:
refused while any other connection has it open), the backup is copied through SQLite
into a 0600 temporary file beside the database, the old database is kept under
``DB.before-restore-<UTC time>`` (a hard link: the same bytes, nothing copied),
its stale ``-wal``/``-shm``/``-journal`` are removed, and the copy is renamed over
``DB`` (:func:`adk_lite.outfile.temporary`): another process sees the old file or
the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Union

from . import outfile
from .sqlite import copy_database, exclusive, verify_copy
from .target import mask_password, target_kind


def _kept_name(db: str) -> str:
    """``DB.before-restore-<UTC time>``, with ``-1``, ``-2``... if that exists."""
    base = f"{db}.before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    name, n = base, 0
    while os.path.lexists(name):
        n += 1
        name = f"{base}-{n}"
    return name


def restore(backup: Union[str, os.PathLike], db: Union[str, os.PathLike], *, keep: bool = True) -> dict[str, Any]:
    """Replace the database file ``db`` with the backup file ``backup``.

    Args:
        backup: a file made by :meth:`adk_lite.DatabaseSessionService.backup` (or any
            quiet adk_lite database file: one with no ``-wal`` beside it).
        db: the database to replace; it may be missing (then it is created).
        keep: keep the replaced database as ``db + ".before-restore-<UTC time>"``.

    Returns:
        ``{"path": db, "backup": backup, "kept": the kept file or None, "bytes":
        int (the restored file), "pages": int, "schema_version": int, "seconds": float}``.

    Raises:
        TypeError: a path that is not a str or PathLike.
        ValueError: ``backup`` is ``db`` or one of its side files, has a ``-wal``
            beside it (a live database: back it up first), ``db`` is a directory, or
            ``db`` is a PostgreSQL URL (load a backup there with ``adk-lite copy``).
        DatabaseError: the backup fails a check (:func:`adk_lite.sqlite.verify_copy`);
            ``DatabaseLockedError`` while another connection has ``db`` open. In
            every case ``db`` is left as it was.
    """
    for name, value in (("backup", backup), ("db", db)):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a str or PathLike, not {type(value).__name__}")
    backup, db = os.fspath(backup), os.fspath(db)
    if target_kind(db) == "postgres":
        raise ValueError(f"restore replaces a SQLite file, and {mask_password(db)} is a PostgreSQL database: "
                         "load a backup into it with 'adk-lite copy BACKUP URL' (copy_database)")
    if outfile.is_database_file(backup, db):
        raise ValueError(f"backup {backup} is the database {db} or one of its side files")
    if os.path.lexists(backup + "-wal"):
        raise ValueError(f"backup {backup} has a -wal file beside it: it is a database in use, not a backup "
                         "(make one with adk-lite backup)")
    if os.path.isdir(db):
        raise ValueError(f"database {db} is a directory")
    started = time.perf_counter()
    version = verify_copy(backup)
    existed, kept = os.path.lexists(db), None
    with exclusive(db) if existed else contextlib.nullcontext():
        try:
            with outfile.temporary(db, force=True) as temp:
                pages = copy_database(backup, temp)
                if existed and keep:
                    kept = _kept_name(db)
                    try:
                        os.link(db, kept)
                    except OSError:
                        os.replace(db, kept)  # no hard links here: DB is missing until the rename below
                for side in ("-wal", "-shm", "-journal"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(db + side)
        except BaseException:
            if kept is not None:  # put the old database back as it was
                with contextlib.suppress(OSError):
                    if os.path.lexists(db):
                        os.unlink(kept)
                    else:
                        os.replace(kept, db)
            raise
    return {"path": db, "backup": backup, "kept": kept, "bytes": os.path.getsize(db), "pages": pages,
            "schema_version": version, "seconds": round(time.perf_counter() - started, 3)}


__all__ = ["restore"]
