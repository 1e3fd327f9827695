"""`mux cp` and `mux new --copy` move data only, on a real engine (issue 22 item 9).

A hostile session (its writes done by scripts inside the container) makes
absolute and escaping symlinks, a setuid copy of a shell, a device node, a
sparse file, and swaps a directory for a link to a host directory while it is
copied out; canaries on the host must stay untouched. The happy path: a normal
tree with relative links goes in and comes back the same."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tests.conftest import docker, mux

pytestmark = pytest.mark.docker
RACE_COPIES = 40
RACE_SECONDS = 30
RACE_PAIRS = 8  # directory/link pairs swapping at once


def session(tmp_path: Path, name: str, config_extra: str = "") -> Path:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    if config_extra:
        config = Path(os.environ["MUX_CONFIG"])
        config.write_text(config.read_text() + config_extra)
    made = mux("new", "--workdir", str(work), name)
    assert made.returncode == 0, made.stderr
    return work


def inside(name: str, script: str, *, root: bool = True) -> str:
    """A script run in the session as an agent's program would (root: an agent
    that is root in its container; --privileged only where a node is made)."""
    argv = ["exec", *(["-u", "0"] if root else []), f"mux-{name}", "sh", "-c", script]
    return docker(*argv).stdout


def make_node(path: Path) -> None:
    """A device node in the session's tree. Sessions may lack CAP_MKNOD, so a
    container of this test's own (labelled with its instance) makes it in the
    same host directory the session's /workspace is."""
    docker("run", "--rm", "--label", f"mux.instance={os.environ['MUX_INSTANCE']}", "--cap-add", "MKNOD",
           "-v", f"{path.parent}:/w", "mux-test/busybox", "sh", "-c", f"mknod /w/{path.name} c 1 1")


def canary(tmp_path: Path) -> Path:
    host = tmp_path / "canary"
    host.mkdir()
    (host / "keep").write_text("untouched\n")
    return host


def untouched(host: Path) -> None:
    assert sorted(p.name for p in host.iterdir()) == ["keep"]
    assert (host / "keep").read_text() == "untouched\n"


def test_out_of_a_hostile_session_comes_data_only(images, mux_home, unique_name, tmp_path: Path) -> None:
    work = session(tmp_path, unique_name)
    host = canary(tmp_path)
    inside(unique_name, f"""set -e
        mkdir -p /workspace/out/sub
        echo data > /workspace/out/sub/file
        ln -s sub/file /workspace/out/rel
        ln -s {host} /workspace/out/abs
        ln -s ../../../../../../../..{host} /workspace/out/up
        mkdir /workspace/out/d && ln -s .. /workspace/out/d/parent && ln -s d/parent/.. /workspace/out/chain
        cp /bin/busybox /workspace/out/sh && chmod 6755 /workspace/out/sh""")
    make_node(work / "out" / "mem")
    dest = tmp_path / "dest"
    dest.mkdir()
    got = mux("cp", f"{unique_name}:out", str(dest))
    assert got.returncode == 0, got.stderr
    out = dest / "out"
    assert (out / "sub" / "file").read_text() == "data\n"
    assert os.readlink(out / "rel") == "sub/file" and (out / "rel").read_text() == "data\n"
    assert os.readlink(out / "d" / "parent") == ".."  # stays inside out/
    for refused in ("abs", "up", "mem", "chain"):
        assert not os.path.lexists(out / refused), refused
    mode = (out / "sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID) and (out / "sh").stat().st_uid == os.getuid()
    lines = got.stderr.splitlines()
    assert len(lines) == 1, got.stderr
    assert "left out 3 symlinks pointing out of the copy" in lines[0]
    assert "device node" in lines[0] and "out/mem" in lines[0] and "setuid/setgid" in lines[0]
    assert not [p for p in dest.iterdir() if p.name.startswith(".mux-cp-")]
    # A second copy onto the same name writes here, never through a link to the canary.
    again = mux("cp", f"{unique_name}:out", str(dest))
    assert again.returncode == 0, again.stderr
    untouched(host)


SWAP_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {  /* swap two names as fast as the kernel can, for argv[3] s */
    time_t end = time(NULL) + atoi(argv[3]);
    while (time(NULL) < end)
        for (int i = 0; i < 10000; i++)
            if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], 2 /* RENAME_EXCHANGE */))
                return 1;
    return 0;
}
"""


def test_a_directory_swapped_for_a_link_while_copying_writes_nothing_outside(
        images, mux_home, unique_name, tmp_path: Path) -> None:
    # The agent compiles a swapper in its session (the Debian image has a compiler) and
    # swaps directories with links to a host directory while `mux cp` copies their parent.
    # With docker's own extraction this wrote into the canary within ~25 copies of one pair.
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text().replace('"mux-test/busybox"', '"mux-test/debian"'))
    work = session(tmp_path, unique_name)
    (work / "swap.c").write_text(SWAP_C)
    host = canary(tmp_path)
    inside(unique_name, f"""set -e
        gcc -O2 -o /tmp/swap /workspace/swap.c
        for p in $(seq 1 {RACE_PAIRS}); do
            mkdir -p /workspace/out/sub$p
            for i in $(seq 1 20); do echo x > /workspace/out/sub$p/pwn$p-$i; done
            ln -s {host} /workspace/out/other$p
        done""")
    docker("exec", "-d", "-u", "0", "-w", "/workspace/out", f"mux-{unique_name}", "sh", "-c",
           f"for p in $(seq 1 {RACE_PAIRS}); do /tmp/swap sub$p other$p {RACE_SECONDS} & done; wait")
    deadline = time.monotonic() + RACE_SECONDS
    copies = 0
    while copies < RACE_COPIES and time.monotonic() < deadline:
        dest = tmp_path / f"dest{copies}"
        dest.mkdir()
        mux("cp", f"{unique_name}:out", str(dest))  # may fail half-way: the tree moves under it
        copies += 1
        assert sorted(p.name for p in host.iterdir()) == ["keep"], f"written outside on copy {copies}"
    untouched(host)
    assert copies >= 10


def test_sparse_file_over_the_limit_is_refused_and_leaves_nothing(
        images, mux_home, unique_name, tmp_path: Path) -> None:
    session(tmp_path, unique_name)
    inside(unique_name, "truncate -s 1G /workspace/sparse && truncate -s 100k /workspace/small")
    dest = tmp_path / "dest"
    dest.mkdir()
    got = mux("cp", f"{unique_name}:sparse", str(dest))  # the default limit: 1 GiB
    assert got.returncode == 1
    assert got.stderr.splitlines()[0] == (f"mux: error: {unique_name}:sparse is larger than the copy limit "
                                          "of 1 GiB; nothing was copied")
    assert "cp_limit" in got.stderr.splitlines()[1]
    assert list(dest.iterdir()) == []
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text() + 'cp_limit = "64k"\n')
    assert mux("cp", f"{unique_name}:small", str(dest)).returncode == 1
    assert list(dest.iterdir()) == []
    config.write_text(config.read_text().replace('"64k"', '"1m"'))
    assert mux("cp", f"{unique_name}:small", str(dest)).returncode == 0
    assert (dest / "small").stat().st_size == 100 * 1024


def make_tree(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("print('hi')\n")
    (root / "src" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "src" / "run.sh").chmod(0o755)
    (root / "src" / "empty").mkdir()
    os.symlink("pkg/mod.py", root / "src" / "link")
    os.symlink("pkg", root / "src" / "dirlink")
    os.symlink("../run.sh", root / "src" / "pkg" / "up")


def tree(root: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            found[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            found[rel] = ("dir",)
        else:
            found[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode) & 0o111)
    return found


def test_a_normal_tree_with_relative_links_round_trips(images, mux_home, unique_name, tmp_path: Path) -> None:
    session(tmp_path, unique_name)
    here = tmp_path / "here"
    make_tree(here)
    put = mux("cp", str(here / "src"), f"{unique_name}:/tmp/")
    assert put.returncode == 0 and put.stderr == "", put.stderr
    assert inside(unique_name, "readlink /tmp/src/link; cat /tmp/src/link") == "pkg/mod.py\nprint('hi')\n"
    back = tmp_path / "back"
    got = mux("cp", f"{unique_name}:/tmp/src", str(back))  # a new name: the directory becomes it
    assert got.returncode == 0 and got.stderr == "", got.stderr
    assert tree(back) == tree(here / "src")
    contents = tmp_path / "contents"
    assert mux("cp", f"{unique_name}:/tmp/src/.", str(contents)).returncode == 0
    assert tree(contents) == tree(here / "src")
    assert mux("cp", f"{unique_name}:/tmp/src/run.sh", str(tmp_path / "one.sh")).returncode == 0
    assert (tmp_path / "one.sh").read_text() == "#!/bin/sh\necho run\n"


def hostile_host_tree(root: Path, host: Path) -> None:
    root.mkdir()
    (root / "ok.txt").write_text("ok\n")
    os.symlink(str(host), root / "abs")
    os.symlink("../../outside", root / "up")
    os.mkfifo(root / "fifo")
    (root / "su").write_bytes(Path("/bin/true").read_bytes())
    (root / "su").chmod(0o4755)


def test_into_a_session_goes_data_only(images, mux_home, unique_name, tmp_path: Path) -> None:
    session(tmp_path, unique_name)
    src = tmp_path / "src"
    hostile_host_tree(src, canary(tmp_path))
    got = mux("cp", str(src), f"{unique_name}:/tmp/in")
    assert got.returncode == 0, got.stderr
    assert len(got.stderr.splitlines()) == 1 and "left out 2 symlinks" in got.stderr
    listed = inside(unique_name, "cd /tmp/in && ls -A && stat -c '%a' su")
    assert listed.split() == ["ok.txt", "su", "755"]


def test_copy_mode_workdir_goes_in_data_only(images, mux_home, unique_name, tmp_path: Path) -> None:
    work = tmp_path / "proj"
    hostile_host_tree(work, canary(tmp_path))
    made = mux("new", "--copy", "--workdir", str(work), unique_name)
    assert made.returncode == 0, made.stderr
    assert "left out 2 symlinks" in made.stderr and "fifo" in made.stderr
    listed = inside(unique_name, "cd /workspace && ls -A && stat -c '%a' su && cat ok.txt")
    assert listed.split() == ["ok.txt", "su", "755", "ok"]


def test_copy_mode_over_the_limit_makes_nothing(images, mux_home, unique_name, tmp_path: Path) -> None:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "big").write_bytes(b"x" * 200_000)
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text() + 'cp_limit = "100k"\n')
    made = mux("new", "--copy", "--workdir", str(work), unique_name)
    assert made.returncode == 1, made.stderr
    assert "larger than the copy limit of 100 KiB" in made.stderr.splitlines()[0]
    label = f"label=mux.instance={os.environ['MUX_INSTANCE']}"
    assert docker("ps", "-aq", "--filter", label).stdout == ""
    assert docker("volume", "ls", "-q", "--filter", label).stdout == ""
