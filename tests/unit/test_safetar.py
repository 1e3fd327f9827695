"""mux/session/safetar.py on crafted tar streams: what a hostile engine or session could
put in `docker cp`'s archive, extracted into a temp directory with canaries beside it."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from mux.session import safetar


def archive(*members: tuple[str, str, object]) -> io.BytesIO:
    """(kind, name, data-or-target): kind file, dir, sym, hard, chr, fifo."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, extra in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                data = extra if isinstance(extra, bytes) else str(extra).encode()
                info.size = len(data)
                if name.endswith("suid"):
                    info.mode = 0o6755
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = str(extra)
            if kind == "dir":
                info.mode = 0o755
            tar.addfile(info)
    out.seek(0)
    return out


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    root, canary = tmp_path / "root", tmp_path / "canary"
    root.mkdir()
    canary.mkdir()
    return root, canary


def run(root: Path, stream: io.BytesIO, *, limit: int = 1 << 20, contents: bool = False) -> safetar.Refusals:
    refusals = safetar.Refusals()
    safetar.extract(stream, root, limit=limit, refusals=refusals, what="s:out", contents=contents)
    return refusals


def test_a_file_through_a_symlink_is_never_written(place: tuple[Path, Path]) -> None:
    root, canary = place
    # The race of issue 22 as docker's tar shows it: the directory is a link now, its child follows.
    refusals = run(root, archive(("dir", "out", None), ("sym", "out/sub", str(canary)),
                                 ("file", "out/sub/pwn", "x")))
    assert list(canary.iterdir()) == []
    assert not os.path.lexists(root / "out" / "sub" / "pwn") or (root / "out" / "sub").is_dir()
    assert "symlink" in (refusals.line("copied") or "")


def test_a_kept_relative_link_is_not_followed_by_later_entries(place: tuple[Path, Path]) -> None:
    root, canary = place
    refusals = run(root, archive(("dir", "out", None), ("dir", "out/d", None), ("sym", "out/l", "d"),
                                 ("file", "out/l/f", "x")))
    assert os.readlink(root / "out" / "l") == "d" and not (root / "out" / "d" / "f").exists()
    assert "under a symlink" in (refusals.line("copied") or "")


@pytest.mark.parametrize(("members", "gone", "words"), [
    ([("sym", "out/abs", "/etc")], "out/abs", "pointing out of the copy"),
    ([("sym", "out/up", "../x")], "out/up", "pointing out of the copy"),
    ([("dir", "out/d", None), ("sym", "out/d/p", ".."), ("sym", "out/c", "d/p/..")], "out/c", "pointing out"),
    ([("chr", "out/mem", None)], "out/mem", "device node"),
    ([("fifo", "out/f", None)], "out/f", "fifo"),
    ([("file", "../escape", "x")], "../escape", "outside the copied path"),
    ([("file", "/abs", "x")], "abs", "outside the copied path"),
    ([("file", "other/x", "x")], "other", "outside the copied path"),
    ([("hard", "out/h", "/etc/passwd")], "out/h", "hard link"),
], ids=["absolute", "relative-up", "chain", "device", "fifo", "dotdot-name", "absolute-name", "second-top",
        "hardlink-out"])
def test_refused_entries(place: tuple[Path, Path], members: list, gone: str, words: str) -> None:
    root, canary = place
    refusals = run(root, archive(("dir", "out", None), *members))
    assert not os.path.lexists(root / gone)
    assert words in (refusals.line("copied") or "")
    assert list(canary.iterdir()) == [] and not (root.parent / "escape").exists()


def test_setuid_is_cleared_and_the_file_kept(place: tuple[Path, Path]) -> None:
    root, _ = place
    refusals = run(root, archive(("dir", "out", None), ("file", "out/suid", b"\x7fELF")))
    mode = (root / "out" / "suid").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID) and mode & 0o111
    assert refusals.line("copied") == "mux: copied cleared setuid/setgid bits on 1 file (out/suid)"


def test_limit_counts_the_header_size_before_reading(place: tuple[Path, Path]) -> None:
    root, _ = place
    with pytest.raises(safetar.TooLarge, match="larger than the copy limit of 1 KiB"):
        run(root, archive(("dir", "out", None), ("file", "out/big", b"x" * 2000)), limit=1024)


def test_hard_link_to_a_copied_file_and_directory_modes(place: tuple[Path, Path]) -> None:
    root, _ = place
    run(root, archive(("dir", "out", None), ("file", "out/f", "data"), ("hard", "out/h", "out/f")))
    assert (root / "out" / "h").read_text() == "data" and os.stat(root / "out" / "h").st_nlink == 2


def test_walk_and_write_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f").write_text("x")
    os.symlink("b/f", src / "a" / "l")
    os.symlink("/etc/passwd", src / "abs")
    refusals = safetar.Refusals()
    entries = safetar.walk(src, "dst", refusals, limit=0, what="src", contents=False)
    assert [e.name for e in entries] == ["dst", "dst/a", "dst/a/b", "dst/a/b/f", "dst/a/l"]
    out = io.BytesIO()
    safetar.write(out, entries, refusals)
    out.seek(0)
    back = tmp_path / "back"
    back.mkdir()
    assert run(back, out).line("x") is None
    assert os.readlink(back / "dst" / "a" / "l") == "b/f" and (back / "dst" / "a" / "l").read_text() == "x"
    assert "abs" in (refusals.line("copied") or "")


def test_a_directory_swapped_for_a_link_after_the_walk_sends_nothing_from_there(tmp_path: Path) -> None:
    src, secret = tmp_path / "src", tmp_path / "ssh"
    (src / "d").mkdir(parents=True)
    (src / "d" / "id").write_text("harmless")
    secret.mkdir()
    (secret / "id").write_text("PRIVATE")
    refusals = safetar.Refusals()
    entries = safetar.walk(src, "src", refusals, limit=0, what="src", contents=False)
    (src / "d" / "id").unlink()
    (src / "d").rmdir()
    os.symlink(secret, src / "d")  # what an agent that writes the tree could do meanwhile
    out = io.BytesIO()
    safetar.write(out, entries, refusals)
    assert b"PRIVATE" not in out.getvalue()
    assert "changed while copying" in (refusals.line("copied") or "")


def test_world_write_is_cleared(place: tuple[Path, Path]) -> None:
    root, _ = place
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.mode, info.size = 0o666, 1
        tar.addfile(info, io.BytesIO(b"x"))
    stream.seek(0)
    safetar.extract(stream, root, limit=0, refusals=safetar.Refusals(), what="s:f", contents=False)
    assert stat.S_IMODE((root / "f").stat().st_mode) == 0o664


def test_moving_into_place_replaces_links_and_never_writes_through_them(tmp_path: Path) -> None:
    from mux.session.cp import _place

    canary_file, canary_dir = tmp_path / "canary.txt", tmp_path / "canary"
    canary_file.write_text("untouched")
    canary_dir.mkdir()
    dest, fresh = tmp_path / "dest", tmp_path / "fresh"
    (dest / "out").mkdir(parents=True)
    os.symlink(canary_file, dest / "out" / "f")  # left by an earlier copy, or planted in a shared workdir
    os.symlink(canary_dir, dest / "out" / "sub")
    (fresh / "out" / "sub").mkdir(parents=True)
    (fresh / "out" / "f").write_text("new")
    (fresh / "out" / "sub" / "x").write_text("x")
    refusals = safetar.Refusals()
    src, dst = os.open(fresh, os.O_RDONLY), os.open(dest, os.O_RDONLY)
    try:
        _place(src, "out", dst, "out", refusals, "out", strict=True)
    finally:
        os.close(src)
        os.close(dst)
    assert canary_file.read_text() == "untouched" and list(canary_dir.iterdir()) == []
    assert not (dest / "out" / "f").is_symlink() and (dest / "out" / "f").read_text() == "new"
    assert "kept 1 entry here unchanged (a file and a directory clash) (out/sub)" in (refusals.line("copied") or "")
