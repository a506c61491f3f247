"""Safe output files: never over a database, never a half-written file.

A command that writes a file (``adk-lite export -o FILE``) goes through
:func:`writing`: the output is refused when it is the database or one of its side
files (``-wal``, ``-shm``, ``-journal``), by name, through a symlink or as a hard
link (``os.stat`` device and inode are compared); an existing output is refused
unless ``force``; the bytes go to a temporary file in the output's folder, created
with mode 0600 (an export is as private as the database), which is fsynced and
``os.replace``'d over the output at the end, and removed on any error or Ctrl-C.
A file that SQLite fills (a backup, a restored copy) goes through :func:`temporary`,
which gives the temporary file's name instead of an open file.

The database itself is only ever ``os.stat``'ed here, never opened: closing any
descriptor on a database file drops every POSIX lock the process holds on it (see
:func:`adk_lite.sqlite_check.inspect_file`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from typing import BinaryIO, Iterator, Optional, Sequence

SIDE_SUFFIXES = ("", "-wal", "-shm", "-journal")
"""The database file and the files SQLite keeps beside it."""


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def database_files(db_path: str) -> list[str]:
    """The database file and its side files, by name (existing or not)."""
    return [db_path + suffix for suffix in SIDE_SUFFIXES]


def is_database_file(path: str, db_path: str) -> bool:
    """True when ``path`` is ``db_path`` or one of its side files: the same name
    once symlinks are resolved, or the same device and inode (a hard link).
    Only ``os.stat`` is used; neither file is opened."""
    target = os.path.realpath(path)
    mine = _stat(path)
    for name in database_files(db_path):
        if target in (os.path.realpath(name), os.path.realpath(db_path) + name[len(db_path):]):
            return True
        theirs = _stat(name)
        if mine is not None and theirs is not None and (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
            return True
    return False


def same_file(fd: int, db_path: str) -> bool:
    """True when the open descriptor ``fd`` (e.g. stdout redirected to a file) is
    ``db_path`` or one of its side files (device and inode compared)."""
    try:
        mine = os.fstat(fd)
    except OSError:
        return False
    if not stat.S_ISREG(mine.st_mode):
        return False
    for name in database_files(db_path):
        theirs = _stat(name)
        if theirs is not None and (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
            return True
    return False


def check(path: str, protect: Sequence[str] = (), *, force: bool = False) -> None:
    """Refuse an output path before anything is written.

    Args:
        path: the output file.
        protect: database paths whose files (and side files) must not be written.
        force: allow replacing an existing file (never a database file).

    Raises:
        ValueError: ``path`` is empty, a protected database or side file, a
            directory, or (without ``force``) an existing file; the message names it.
    """
    if not path:
        raise ValueError("the output file name is empty")
    for db_path in protect:
        if is_database_file(path, db_path):
            raise ValueError(f"output {path} is the database {db_path} or one of its -wal/-shm/-journal files: "
                             "refusing to write over it")
    if os.path.isdir(path):
        raise ValueError(f"output {path} is a directory")
    if os.path.lexists(path) and not force:
        raise ValueError(f"output {path} already exists (use --force to replace it)")


@contextlib.contextmanager
def temporary(path: str, protect: Sequence[str] = (), *, force: bool = False) -> Iterator[str]:
    """Make ``path`` atomically from a file someone else fills: yield the name of an
    empty 0600 temporary file in the same folder (e.g. for SQLite to write a backup
    into); on success fsync it and ``os.replace`` it over ``path``; on any error (or
    KeyboardInterrupt) remove it (and any ``-journal``/``-wal``/``-shm`` beside it)
    and leave ``path`` as it was.

    The checks of :func:`check` run before the temporary file is made and again
    just before the replace.

    Raises:
        ValueError: see :func:`check`.
        OSError: the folder is missing or not writable, the disk is full.
    """
    check(path, protect, force=force)
    folder, name = os.path.split(os.path.abspath(path))
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600))
    try:
        yield temp
        fd = os.open(temp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        check(path, protect, force=force)
        os.replace(temp, path)
    except BaseException:
        for leftover in database_files(temp):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        raise
    _sync_folder(folder)


@contextlib.contextmanager
def writing(path: str, protect: Sequence[str] = (), *, force: bool = False) -> Iterator[BinaryIO]:
    """Write ``path`` atomically: yield a binary file on a 0600 temporary file in
    the same folder (see :func:`temporary`); on success it replaces ``path``; on any
    error (or KeyboardInterrupt) it is removed and ``path`` is left as it was.

    Raises:
        ValueError: see :func:`check`.
        OSError: the folder is missing or not writable, the disk is full.
    """
    with temporary(path, protect, force=force) as temp:
        with open(temp, "wb") as fh:
            yield fh


def _sync_folder(folder: str) -> None:
    """fsync a folder so a rename in it survives a power loss (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["check", "temporary", "writing", "is_database_file", "same_file", "database_files", "SIDE_SUFFIXES"]
