"""Safe output files (adk_lite.outfile) and ``adk-lite export -o`` over them."""

import os
import stat

import pytest

from adk_lite import DatabaseSessionService, outfile
from adk_lite.cli import main


@pytest.fixture
def live_db(tmp_path):
    """A database with a session, opened by a writer so its -wal and -shm exist."""
    (tmp_path / "data").mkdir()
    path = str(tmp_path / "data" / "s.db")
    svc = DatabaseSessionService(path)
    svc.create_session("app", "u", session_id="s", state={"k": 1})
    yield path
    svc.close()


def outputs_that_are_the_database(tmp_path, db):
    """Every way to name the database or a side file: names, symlinks, hard links, missing side files."""
    names = [db, db + "-wal", db + "-shm", db + "-journal",  # -journal does not exist (WAL mode)
             os.path.join(str(tmp_path), "data", ".", "s.db"), os.path.relpath(db)]
    for i, target in enumerate([db, db + "-wal", db + "-shm", db + "-journal"]):
        link = str(tmp_path / f"sym{i}")
        os.symlink(target, link)
        names.append(link)
    for i, target in enumerate([db, db + "-wal", db + "-shm"]):
        link = str(tmp_path / f"hard{i}")
        os.link(target, link)
        names.append(link)
    os.symlink(os.path.dirname(db), str(tmp_path / "alias"))  # a linked folder
    names.append(str(tmp_path / "alias" / "s.db-wal"))
    return names


def file_state(path):
    """Size, mtime and inode (the live database is never open()ed: closing that would drop its locks)."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def test_the_database_and_its_side_files_are_refused_even_with_force(tmp_path, live_db, capsys):
    assert os.path.exists(live_db + "-wal") and os.path.exists(live_db + "-shm")
    for name in outputs_that_are_the_database(tmp_path, live_db):
        before = {p: file_state(p) for p in (live_db, live_db + "-wal")}
        assert outfile.is_database_file(name, live_db), name
        with pytest.raises(ValueError, match="is the database"):
            outfile.check(name, [live_db], force=True)
        for force in ([], ["--force"]):
            code = main(["export", live_db, "-o", name, *force])
            err = capsys.readouterr().err
            assert code == 2 and err.count("\n") == 1 and "is the database" in err, (name, err)
        assert {p: file_state(p) for p in (live_db, live_db + "-wal")} == before, name
    assert not os.path.exists(live_db + "-journal")


def test_other_files_are_not_the_database(tmp_path, live_db):
    for name in (live_db + ".bak", live_db + "-wal2", str(tmp_path / "x.jsonl"), live_db + "-walx"):
        assert not outfile.is_database_file(name, live_db)


def test_stdout_redirected_to_the_database_is_refused(tmp_path, live_db):
    fd = os.open(live_db, os.O_WRONLY | os.O_APPEND)  # as `adk-lite export DB >> DB` would
    try:
        assert outfile.same_file(fd, live_db)
    finally:
        os.close(fd)
    other = os.open(str(tmp_path / "other.txt"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert not outfile.same_file(other, live_db)
    finally:
        os.close(other)


def test_existing_output_needs_force_and_is_replaced_whole_0600(tmp_path, live_db, capsys):
    out = tmp_path / "out.jsonl"
    out.write_text("keep me")
    os.chmod(out, 0o644)
    assert main(["export", live_db, "-o", str(out)]) == 2
    assert "already exists (use --force" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["export", live_db, "-o", str(out), "--force"]) == 0
    assert b'"session_id":"s"' in out.read_bytes()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    new = tmp_path / "new.jsonl"
    assert main(["export", live_db, "-o", str(new)]) == 0
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_while_writing_leaves_no_file_and_the_old_one_intact(tmp_path, exc):
    out = tmp_path / "out.txt"
    with pytest.raises(type(exc)):
        with outfile.writing(str(out)) as fh:
            fh.write(b"half")
            raise exc
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"old")
    with pytest.raises(type(exc)):
        with outfile.writing(str(out), force=True) as fh:
            fh.write(b"half")
            raise exc
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"] and out.read_bytes() == b"old"


def test_temp_file_is_0600_while_written(tmp_path):
    with outfile.writing(str(tmp_path / "o")) as fh:
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and stat.S_IMODE(os.stat(temps[0]).st_mode) == 0o600
        fh.write(b"x")
    assert (tmp_path / "o").read_bytes() == b"x"


def test_bad_output_paths_are_one_line_errors(tmp_path, live_db, capsys):
    for name, words in ((str(tmp_path), "is a directory"), (str(tmp_path / "no" / "such" / "dir.jsonl"), "No such"),
                        ("", "empty")):
        code = main(["export", live_db, "-o", name])
        err = capsys.readouterr().err
        assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err, (name, err)
