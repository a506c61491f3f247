"""Restore a database file from a backup (``adk-lite restore BACKUP DB``).

The backup is checked first (:func:`adk_lite.sqlite.verify_copy`: adk_lite's tables,
a schema version this release reads, a schema holding nothing adk_lite does not make,
SQLite's integrity and foreign-key checks, FTS5's own check of the search index and
its agreement with the events).
Then, holding SQLite's EXCLUSIVE lock on the database (:func:`adk_lite.sqlite.exclusive`:
refused while any other connection has it open), the backup is copied through SQLite
into a 0600 temporary file beside the database, the old database is kept under
``DB.before-restore-<UTC time>`` (a hard link: the same bytes, nothing copied),
its stale ``-wal``/``-shm``/``-journal`` are removed, the copy's search index is
rebuilt from its (checked) text, so no index page of the backup is installed
(:func:`adk_lite.sqlite.rebuild_search`: time grows with the events' text), and the copy is renamed over
``DB`` (:func:`adk_lite.outfile.temporary`): another process sees the old file or
the new one, never a mix.

``DB`` is the file its name leads to: a symbolic link (or a folder on the way that
is one) is followed, and the file it points to is replaced, the link left as it
is (SQLite too opens the file a link points to, and keeps its ``-wal`` beside it).
A file with other hard links is refused: a rename gives only this name the
backup, and every other name would go on holding the old database.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Union

from . import outfile
from .sqlite import copy_database, exclusive, rebuild_search, verify_copy
from .target import MEMORY, mask_password, resolve, target_kind


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
        db: the database to replace, a path or a ``sqlite:///`` URL (see
            :func:`adk_lite.target.parse_target`); it may be missing (then it is
            created). A symbolic link is followed: the file it points to is replaced.
        keep: keep the replaced database as ``db + ".before-restore-<UTC time>"``.

    Returns:
        ``{"path": db, "file": the file replaced (``db`` with links followed),
        "backup": backup, "kept": the kept file (beside "file") or None, "bytes":
        int (the restored file), "pages": int, "schema_version": int, "seconds": float}``.

    Raises:
        TypeError: a path that is not a str or PathLike.
        ValueError: ``backup`` is ``db`` or one of its side files, has a ``-wal``
            beside it (a live database: back it up first), ``db`` is a directory, has
            other hard links, is ``":memory:"``, a ``file:`` name or a bad URL, or
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
                         "load a backup into it with 'adk-lite copy BACKUP URL' (copy_to)")
    given = db
    db = resolve(db)
    if db == MEMORY:
        raise ValueError("restore replaces a database file, not an in-memory database")
    db = os.path.realpath(db)  # the file a link leads to: it is what SQLite opens
    if outfile.is_database_file(backup, db):
        raise ValueError(f"backup {backup} is the database {given} or one of its side files")
    if os.path.lexists(backup + "-wal"):
        raise ValueError(f"backup {backup} has a -wal file beside it: it is a database in use, not a backup "
                         "(make one with adk-lite backup)")
    if os.path.isdir(db):
        raise ValueError(f"database {given} is a directory")
    try:
        links = os.stat(db).st_nlink if os.path.lexists(db) else 1
    except OSError as e:  # a loop of symbolic links, a folder that cannot be read
        raise ValueError(f"database {given} cannot be reached: {e.strerror or e}") from e
    if links > 1:
        raise ValueError(f"database {given} has {links - 1} other hard link(s): restore would give only this name "
                         "the backup, and the others would keep the old database (remove them first)")
    started = time.perf_counter()
    version = verify_copy(backup)
    existed, kept = os.path.lexists(db), None
    with exclusive(db) if existed else contextlib.nullcontext():
        try:
            with outfile.temporary(db, force=True) as temp:
                pages = copy_database(backup, temp)
                rebuild_search(temp)
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
    return {"path": given, "file": db, "backup": backup, "kept": kept, "bytes": os.path.getsize(db), "pages": pages,
            "schema_version": version, "seconds": round(time.perf_counter() - started, 3)}


__all__ = ["restore"]
