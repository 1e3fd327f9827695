"""The --copy guard (mux/workspace/copyrecord.py, copyguard.py): its format, its parsing
(hostile or oversized: cannot tell), the manifest fed by safetar, and how the box's
answer is read. The box itself runs in tests/integration/test_copy_guard.py."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from mux.engine.runner import Result
from mux.session import safetar
from mux.workspace import copyguard, copyrecord
from mux.workspace.copyrecord import HEADER, Manifest, Record, parse_record, read_record
from mux.workspace.gitbox import Tree

DIGEST = "a" * 64
GOOD = f"{HEADER}\nsha256 {DIGEST}\nentries 3\nbytes 12\n".encode()


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    record = Record(DIGEST, 3, 12)
    copyrecord.write_record(tmp_path, record)
    path = tmp_path / copyrecord.RECORD_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == GOOD
    assert read_record(tmp_path) == record


def test_no_record_is_none(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None


@pytest.mark.parametrize("raw", [
    b"",
    GOOD[:-1],  # no last newline
    GOOD + b"extra\n",
    GOOD.replace(b"v1", b"v2"),
    GOOD.replace(DIGEST.encode(), b"A" * 64),
    GOOD.replace(DIGEST.encode(), b"a" * 63),
    GOOD.replace(b"entries 3", b"entries -3"),
    GOOD.replace(b"entries 3", b"entries 3 "),
    GOOD.replace(b"bytes 12", b"bytes 1" + b"0" * 20),
    GOOD.replace(b"sha256", b"sha512"),
    GOOD.replace(b"\n", b"\r\n"),
    GOOD.replace(b"bytes 12", "bytes １２".encode()),  # digits, but not ASCII ones
    b"\xff" + GOOD,
    GOOD + b"\n" * 5000,
    b"x" * (copyrecord.RECORD_LIMIT + 1),
])
def test_a_record_not_exactly_muxs_cannot_tell(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_record(raw)


def test_an_oversized_record_is_read_only_to_its_limit(tmp_path: Path) -> None:
    (tmp_path / copyrecord.RECORD_FILE).write_bytes(GOOD + b"#" * (100 << 20))
    with pytest.raises(ValueError, match="larger"):
        read_record(tmp_path)


def test_a_record_that_is_a_link_or_a_fifo_cannot_tell(tmp_path: Path) -> None:
    good = tmp_path / "elsewhere"
    good.write_bytes(GOOD)
    os.symlink(good, tmp_path / copyrecord.RECORD_FILE)
    with pytest.raises(ValueError):
        read_record(tmp_path)
    os.unlink(tmp_path / copyrecord.RECORD_FILE)
    os.mkfifo(tmp_path / copyrecord.RECORD_FILE)
    with pytest.raises(ValueError, match="not a file"):
        read_record(tmp_path)  # O_NONBLOCK: never waits for a writer


def _manifest(tree: Path) -> Record:
    refusals = safetar.Refusals()
    entries = safetar.walk(tree, "workspace", refusals, limit=0, what="t", contents=False)
    manifest = Manifest("workspace")
    safetar.write(io.BytesIO(), entries, refusals, manifest.sent)
    return manifest.record()


def test_the_manifest_is_the_sorted_records_of_what_was_sent(tmp_path: Path) -> None:
    tree = tmp_path / "proj"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a b").write_bytes(b"hello")
    odd = os.fsdecode(b"n\nl\\\xff")
    (tree / odd).write_bytes(b"")
    os.symlink("sub/a b", tree / "ln")
    os.mkfifo(tree / "fifo")  # never sent, so never recorded
    records = [b"d sub\0", b"f 5 %s sub/a b\0" % hashlib.sha256(b"hello").hexdigest().encode(),
               b"f 0 %s n\nl\\\xff\0" % hashlib.sha256(b"").hexdigest().encode(), b"l 7 sub/a b ln\0"]
    expected = hashlib.sha256(b"".join(sorted(records))).hexdigest()
    assert _manifest(tree) == Record(expected, 4, 5)


def test_a_rename_or_a_new_empty_directory_changes_the_digest(tmp_path: Path) -> None:
    tree = tmp_path / "proj"
    tree.mkdir()
    (tree / "a").write_text("x")
    before = _manifest(tree)
    (tree / "a").rename(tree / "a\n")
    renamed = _manifest(tree)
    (tree / "d").mkdir()
    assert len({before.digest, renamed.digest, _manifest(tree).digest}) == 3


class Box:
    """A runner whose box prints ``stdout``."""

    def __init__(self, stdout: str, returncode: int = 0, stderr: str = "") -> None:
        self.answer = (returncode, stdout, stderr)
        self.argv: list[str] = []

    def query(self, argv: list[str], **_: object) -> Result:
        self.argv = argv
        return Result(argv, *self.answer)


TREE = Tree("s", "volume", "mux-s-workspace", "img", "1000:1000")
RECORD = Record(DIGEST, 3, 12)


def test_the_same_digest_is_no_reason() -> None:
    box = Box(f"copy 3 12 {DIGEST}\n")
    assert copyguard.check(box, TREE, RECORD) == []  # type: ignore[arg-type]
    argv = box.argv
    assert "--network" in argv and argv[argv.index("--network") + 1] == "none"
    assert "type=volume,source=mux-s-workspace,target=/r/0,readonly,volume-nocopy" in argv
    assert not any("git" in a and "nogit" in a for a in argv)  # no git needed in the image


@pytest.mark.parametrize("stdout", [f"copy 3 12 {'b' * 64}\n", "copy 4 13 differs\n"])
def test_another_digest_or_other_counts_are_a_reason(stdout: str) -> None:
    box = Box(stdout)
    (why,) = copyguard.check(box, TREE, RECORD)  # type: ignore[arg-type]
    assert why.startswith("its workspace copy differs from what mux copied in")
    assert box.argv[-2:] == ["3", "12"]  # the box hashes nothing unless the counts are mux's


@pytest.mark.parametrize("stdout", [
    "", "copy 3 12\n", f"copy 3 12 {DIGEST}\ncopy 3 12 {DIGEST}\n", f"copy 3 12 {DIGEST.upper()}\n",
    f"copy -3 12 {DIGEST}\n", f"copy 3 12 {DIGEST} \n", "nogit\n", f"copy 3 12 {DIGEST}" + "x" * 10_000,
    "copy x \x1b[31mred\n",
])
def test_an_answer_that_is_not_a_check_cannot_tell(stdout: str) -> None:
    (why,) = copyguard.check(Box(stdout), TREE, RECORD)  # type: ignore[arg-type]
    assert why.startswith("it cannot be checked for unsaved work in its workspace copy")
    assert "\x1b" not in why


def test_a_box_that_fails_cannot_tell() -> None:
    box = Box(f"copy 3 12 {DIGEST}\n", 125, "docker: Error response from daemon: \x1b[2Jno such volume")
    (why,) = copyguard.check(box, TREE, RECORD)  # type: ignore[arg-type]
    assert "cannot be checked" in why and "\x1b" not in why


def test_what_the_box_says_it_cannot_tell_is_passed_on() -> None:
    (why,) = copyguard.check(Box("copy x more than 200000 entries\n"), TREE, RECORD)  # type: ignore[arg-type]
    assert why.endswith(": more than 200000 entries")


def test_what_lands_in_another_mount_is_left_out_but_its_mount_point_is_kept(tmp_path: Path) -> None:
    tree = tmp_path / "proj"
    (tree / "deps" / "x").mkdir(parents=True)
    (tree / "deps" / "x" / "f").write_text("in the other volume")
    (tree / "deps2").write_text("not under it")
    refusals = safetar.Refusals()
    entries = safetar.walk(tree, "workspace", refusals, limit=0, what="t", contents=False)
    manifest = Manifest("workspace", ("deps", "a/b"))
    safetar.write(io.BytesIO(), entries, refusals, manifest.sent)
    records = [b"d deps\0", b"d a\0", b"d a/b\0",
               b"f 12 %s deps2\0" % hashlib.sha256(b"not under it").hexdigest().encode()]
    assert manifest.record() == Record(hashlib.sha256(b"".join(sorted(records))).hexdigest(), 4, 12)
