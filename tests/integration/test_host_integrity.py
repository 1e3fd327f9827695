"""A session is an untrusted remote: hostile scripts inside real sessions, canaries on the host.

Each test runs the agent's side as a script in a real container and then checks
something on the host that must be untouched (hashes of the user's repository,
the bits of files in the workdir, the identity of the next session)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, mux, session_dir

pytestmark = pytest.mark.docker


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def tree_hashes(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under ``root``: its content hash, mode and inode (links by their target text)."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            digest = hashlib.sha256(os.readlink(path).encode()).hexdigest()
        elif path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            digest = "dir"
        found[str(path.relative_to(root))] = (digest, st.st_mode, st.st_ino)
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The user's own working repository, the kind `mux new --repo ../app` names."""
    repo = tmp_path / "app"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README").write_text("hello\n")
    git("add", "README", cwd=repo)
    git("commit", "-qm", "first", cwd=repo)
    return repo


# The agent's side: plant a hook and an fsmonitor command in the source repository
# (where `origin` points), and rewrite every object file of its own clone in place
# (a hardlinked clone shares those inodes with the source).
HOSTILE_REPO = r"""
src="$1"
seen=no
if [ -e "$src" ]; then seen=yes; fi
hook="$src/.git/hooks/post-commit"
mkdir -p "$src/.git/hooks" 2>/dev/null && printf '#!/bin/sh\ntouch /tmp/pwned\n' > "$hook" 2>/dev/null
printf '[core]\n\tfsmonitor = touch /tmp/pwned\n' >> "$src/.git/config" 2>/dev/null
for f in $(find /workspace/.git/objects -type f); do
    chmod u+w "$f" && printf 'garbage' > "$f"
done
echo "source-visible=$seen"
"""


def test_local_repo_source_is_out_of_the_sessions_reach(images, mux_home, project, unique_name) -> None:
    Path(os.environ["MUX_CONFIG"]).write_text(f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n')
    before = tree_hashes(project)
    assert mux("new", "--repo", str(project), unique_name).returncode == 0
    try:
        out = mux("exec", unique_name, "--", "sh", "-c", HOSTILE_REPO, "hostile", str(project))
        assert out.returncode == 0, out.stderr
        assert tree_hashes(project) == before  # no hook, no config, no object changed
        assert "source-visible=no" in out.stdout
        git("fsck", "--strict", cwd=project)
        # The clone owns its objects: not one inode is shared with the source.
        clone_objects = {p.stat().st_ino for p in (session_dir(unique_name) / "repo/.git/objects").rglob("*")
                         if p.is_file()}
        assert clone_objects and not clone_objects & {v[2] for v in before.values()}
    finally:
        mux("delete", "--force", unique_name)


# -- mux's own files are never in a session ------------------------------------------------


def test_new_from_home_refuses_and_makes_nothing(images, tmp_path, unique_name, monkeypatch) -> None:
    """From $HOME (it holds mux's data dir: the CA key, session secrets) `mux new` stops."""
    home = tmp_path / "home"
    data = home / ".local/share/mux"
    (data / "proxy").mkdir(parents=True)
    key = data / "proxy/mitmproxy-ca.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\ncanary\n")
    config = home / ".config/mux/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n')
    for var in ("MUX_DATA_DIR", "MUX_CONFIG", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    env = {"HOME": str(home)}
    made = mux("new", unique_name, cwd=home, env=env)
    try:
        assert made.returncode == 2, made.stdout + made.stderr
        assert made.stderr.startswith("mux: error: the working directory ")
        assert f"contains mux's config directory ({home}/.config/mux)" in made.stderr
        assert mux("list", "-q", env=env, cwd=tmp_path).stdout.strip() == ""
        assert not session_dir(unique_name, data).exists()
        proj = tmp_path / "proj"
        proj.mkdir()
        leaked = mux("new", "-v", f"{data}/proxy:/stolen:ro", unique_name, cwd=proj, env=env)
        assert leaked.returncode == 2 and "lies inside mux's data directory" in leaked.stderr, leaked.stderr
        assert not session_dir(unique_name, data).exists()
    finally:
        mux("delete", "--force", unique_name, env=env, cwd=tmp_path)


# -- least privilege ---------------------------------------------------------------------

# The agent's side: a device node, a setuid copy of a shell, a raw socket, and what
# the kernel says about this process's privileges and limits.
HOSTILE_PRIVILEGE = r"""
cd /workspace
mknod blockdev b 7 0 2>/dev/null && echo made-device
mknod chardev c 1 1 2>/dev/null && echo made-char
cp /bin/sh suid-shell && chmod u+s,g+s suid-shell && echo made-suid
if ping -c1 -W1 127.0.0.1 >/dev/null 2>&1; then echo raw-socket; fi
grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status
cat /sys/fs/cgroup/pids/pids.max
id -u
"""


def special_files(root: Path) -> list[str]:
    """Device nodes, and setuid/setgid files owned by root, under ``root``."""
    import stat

    found = []
    for path in root.rglob("*"):
        st = path.lstat()
        if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
            found.append(f"device {path.name}")
        elif stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID) and st.st_uid == 0:
            found.append(f"setuid-root {path.name}")
    return found


def caps(status: str) -> int:
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("CapBnd")), 16)


NET_RAW, MKNOD, SETFCAP, SETPCAP = 1 << 13, 1 << 27, 1 << 31, 1 << 8


def test_a_default_session_of_root_runs_as_the_workdirs_owner(images, mux_home, tmp_path, unique_name,
                                                               monkeypatch) -> None:
    monkeypatch.delenv("MUX_RUN_AS_ROOT", raising=False)
    work = tmp_path / "w"
    work.mkdir()
    os.chown(work, 4242, 4242)
    made = mux("new", "--workdir", str(work), unique_name)
    assert made.returncode == 0, made.stderr
    try:
        out = mux("exec", unique_name, "--", "sh", "-c", HOSTILE_PRIVILEGE)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[-1] == "4242" and lines[-2] == "4096"
        assert "NoNewPrivs:\t1" in out.stdout
        assert caps(out.stdout) & (NET_RAW | MKNOD | SETFCAP | SETPCAP) == 0
        assert not {"made-device", "made-char", "raw-socket"} & set(lines)
        assert special_files(work) == []
        assert (session_dir(unique_name) / "home").stat().st_uid == 4242
    finally:
        mux("delete", "--force", unique_name)


def test_root_owned_workdir_is_refused_without_the_explicit_setting(images, mux_home, tmp_path, unique_name,
                                                                     monkeypatch) -> None:
    monkeypatch.delenv("MUX_RUN_AS_ROOT", raising=False)
    work = tmp_path / "w"
    work.mkdir()
    made = mux("new", "--workdir", str(work), unique_name)
    assert made.returncode == 2, made.stderr
    assert "uid 0" in made.stderr and "run_as_root" in made.stderr
    assert not session_dir(unique_name).exists()
    assert mux("list", "-q").stdout.strip() == ""


def test_an_explicit_root_session_leaves_no_setuid_file_or_device(images, mux_home, tmp_path, unique_name,
                                                                   monkeypatch) -> None:
    monkeypatch.delenv("MUX_RUN_AS_ROOT", raising=False)  # the config's setting alone
    Path(os.environ["MUX_CONFIG"]).write_text(
        '[docker]\nimage = "mux-test/busybox"\npull = "never"\nrun_as_root = true\n')
    work = tmp_path / "w"
    work.mkdir()
    made = mux("new", "--workdir", str(work), unique_name)
    assert made.returncode == 0, made.stderr
    try:
        out = mux("exec", unique_name, "--", "sh", "-c", HOSTILE_PRIVILEGE)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[-1] == "0"
        assert not {"made-device", "made-char", "raw-socket"} & set(lines)
        assert caps(out.stdout) & (NET_RAW | MKNOD | SETFCAP | SETPCAP) == 0
        stopped = mux("stop", unique_name)
        assert stopped.returncode == 0, stopped.stderr
        assert "cleared the setuid/setgid bits of 1 file" in stopped.stderr
        assert special_files(work) == []
        assert (work / "suid-shell").is_file()  # the data stays, without its bits
    finally:
        mux("delete", "--force", unique_name)


# -- git identity -----------------------------------------------------------------------


def test_git_identity_comes_from_the_users_global_config_only(images, mux_home, tmp_path, unique_name) -> None:
    """An agent-written .git/config in the directory mux runs in sets no identity."""
    Path(os.environ["MUX_CONFIG"]).write_text(f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n')
    work = tmp_path / "w"
    work.mkdir()
    git("init", "-q", cwd=work)
    git("config", "user.name", "evil", cwd=work)
    git("config", "user.email", "evil@attacker.test", cwd=work)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1"}
    printed = mux("new", "--dry-run", unique_name, cwd=work, env=env)
    assert printed.returncode == 0, printed.stderr
    assert "evil" not in printed.stdout
    assert "no git user.name or user.email" in printed.stderr
    (home / ".config/git").mkdir(parents=True)
    (home / ".config/git/config").write_text("[user]\n\temail = ada@example.com\n")
    (home / ".gitconfig").write_text("[user]\n\tname = Ada Lovelace\n")
    made = mux("new", unique_name, cwd=work, env=env)
    assert made.returncode == 0, made.stderr
    try:
        out = mux("exec", unique_name, "--", "sh", "-c", "git config user.name; git config user.email")
        assert out.stdout.splitlines() == ["Ada Lovelace", "ada@example.com"], out.stderr
    finally:
        mux("delete", "--force", unique_name)


# -- caches scoped by trust ---------------------------------------------------------------


def test_a_sessions_compiler_cache_reaches_only_its_own_repository(images, mux_home, tmp_path, unique_name) -> None:
    """The agent poisons the cache it was given: only sessions of the same repository
    share it, and the host's own sccache directory is never one of them."""
    home = tmp_path / "home"
    (home / ".cache/sccache").mkdir(parents=True)
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n[docker.rust]\nsccache = true\ncargo_cache = true\n')
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    poison = 'echo poisoned > "$SCCACHE_DIR/evil" && echo poisoned > "$CARGO_HOME/registry/evil" && echo ok'
    look = 'cat "$SCCACHE_DIR/evil" "$CARGO_HOME/registry/evil" 2>/dev/null || echo clean'
    names = [f"{unique_name}-{x}" for x in "abc"]
    try:
        for name, work in zip(names, (a, b, a)):
            made = mux("new", name, cwd=work, env=env)
            assert made.returncode == 0, made.stderr
        assert mux("exec", names[0], "--", "sh", "-c", poison, env=env).stdout == "ok\n"
        assert mux("exec", names[1], "--", "sh", "-c", look, env=env).stdout == "clean\n"  # another repository
        assert mux("exec", names[2], "--", "sh", "-c", look, env=env).stdout == "poisoned\npoisoned\n"  # same one
        assert list((home / ".cache/sccache").iterdir()) == []  # the host's own cache: untouched
    finally:
        for name in names:
            mux("delete", "--force", name, env=env)


def test_a_cache_dir_of_the_hosts_own_builds_is_refused(images, mux_home, tmp_path, unique_name) -> None:
    home = tmp_path / "home"
    home.mkdir()
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n[docker.rust]\nsccache = true\n'
        f'cache_dir = "{home}/.cache/sccache"\n')
    (tmp_path / "w").mkdir()
    made = mux("new", unique_name, cwd=tmp_path / "w", env={"HOME": str(home), "XDG_CACHE_HOME": ""})
    assert made.returncode == 2 and "a cache your own host builds use" in made.stderr, made.stderr
    assert not session_dir(unique_name).exists()


def test_a_normal_users_root_image_session_leaves_no_setuid_root_file(images, other_user, unique_name) -> None:
    """mux run by an ordinary user, run_as_user = false: the image's root makes a
    setuid-root shell that user cannot chmod; `mux stop` clears it all the same."""
    from tests.integration.test_as_user import mux_as

    user = other_user
    config = Path(user["env"]["MUX_CONFIG"])
    config.write_text(config.read_text().replace("[docker]\n", "[docker]\nrun_as_user = false\n"))
    work = user["base"] / "work"
    made = mux_as(user, "new", unique_name)
    assert made.returncode == 0, made.stderr
    try:
        out = mux_as(user, "exec", unique_name, "--", "sh", "-c", HOSTILE_PRIVILEGE)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[-1] == "0" and "made-suid" in lines
        assert not {"made-device", "made-char", "raw-socket"} & set(lines)
        assert special_files(work) == ["setuid-root suid-shell"]  # the attack, before the stop
        stopped = mux_as(user, "stop", unique_name)
        assert stopped.returncode == 0, stopped.stderr
        assert "cleared the setuid/setgid bits of 1 file" in stopped.stderr, stopped.stderr
        assert special_files(work) == []
    finally:
        mux_as(user, "delete", "--force", unique_name)
