"""Nothing half-made, nothing lost: the fault table, on a real engine.

Every `mux new` that fails or is interrupted (Ctrl-C to the process group, as a
terminal sends it, or SIGTERM, at many instants) ends with a complete session or
with nothing: no container of this instance with its label, no session files,
the name free. Labels and names read back from docker are input: foreign labels,
impostor containers and other instances are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, docker, mux, session_dir

pytestmark = pytest.mark.docker


def instance() -> str:
    return os.environ["MUX_INSTANCE"]


def containers_of(name: str) -> list[str]:
    """IDs of this instance's containers labelled as session ``name``, in any state."""
    out = docker("ps", "-aq", "--filter", f"label=mux.session={name}",
                 "--filter", f"label=mux.instance={instance()}").stdout
    return out.split()


def listed() -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(mux("list", "--json", check=True).stdout)}


def nothing_left(name: str) -> bool:
    return not containers_of(name) and not session_dir(name).exists() and name not in listed()


def complete(name: str) -> bool:
    """A working session: its container runs, its HOME is there and writable."""
    (cid,) = containers_of(name)
    state = json.loads(docker("container", "inspect", cid).stdout)[0]["State"]
    home = session_dir(name) / "home"
    if not (state["Running"] and home.is_dir()):
        return False
    return docker("exec", cid, "sh", "-c", 'touch "$HOME/.probe" && test -d /workspace', check=False).returncode == 0


def own_container(*args: str) -> str:
    """A container this test makes itself, labelled with its instance (so only it is removed)."""
    return docker("run", "-d", "--pull", "never", "--label", f"mux.instance={instance()}", *args).stdout.strip()


# -- failures after docker made the container -----------------------------------------------------


def test_docker_failing_after_create_removes_what_it_made(images, mux_home, unique_name) -> None:
    result = mux("new", "--network", f"no-such-net-{unique_name}", unique_name)
    assert result.returncode == 4, result.stderr
    assert f"no-such-net-{unique_name}" in result.stderr.splitlines()[0]  # docker's reason, one line
    assert nothing_left(unique_name)
    assert mux("new", unique_name).returncode == 0  # the name is free


def test_a_command_that_cannot_start_is_a_failed_new(images, mux_home, unique_name) -> None:
    result = mux("new", unique_name, "--", "nosuchcmd")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (f"mux: error: the command of session {unique_name!r} cannot start: "
                                             "exec nosuchcmd failed: No such file or directory")
    assert "Created" not in result.stdout
    assert nothing_left(unique_name)


def test_a_command_that_ends_is_a_session_and_start_attach_say_so(images, mux_home, unique_name) -> None:
    made = mux("new", unique_name, "--", "sh", "-c", "echo goodbye-from-the-session; exit 3")
    assert made.returncode == 0, made.stderr
    (cid,) = containers_of(unique_name)
    assert docker("wait", cid).stdout.strip() == "3"
    assert listed()[unique_name]["exit_code"] == 3
    assert " 3 " in next(ln for ln in mux("list").stdout.splitlines() if ln.startswith(unique_name))
    for verb in ("start", "attach"):
        again = mux(verb, unique_name)
        assert again.returncode == 1, again
        assert f"session {unique_name!r} stopped right after starting: its command exited with code 3" in again.stderr
        assert "goodbye-from-the-session" in again.stderr and "attached" not in again.stderr


# -- Ctrl-C and SIGTERM at many instants ---------------------------------------------------------

MODES = {
    "plain": [],
    "repo": ["--repo", "{origin}"],
    "proxied": ["--proxy"],
}


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@e", *args], cwd=repo, check=True)
    return repo


@pytest.fixture
def proxy_config(mux_home: Path) -> dict[str, str]:
    from tests.integration.proxy.harness import free_port

    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text() + f"[proxy]\nport = {free_port()}\n")
    yield {}
    mux("proxy", "stop")


def interrupted_new(args: list[str], name: str, inject: str) -> tuple[int, str]:
    """`mux new` with $MUX_TEST_INTERRUPT=``inject``: the signal lands at the named step
    boundaries (mux.interrupts.boundary), each once, not at an instant left to chance."""
    proc = subprocess.run([sys.executable, "-m", "mux", "new", *args, name], capture_output=True, text=True,
                          env={**os.environ, "MUX_TEST_INTERRUPT": inject}, timeout=180)
    return proc.returncode, proc.stderr


def boundaries_passed(err: str) -> list[str]:
    return [line.split()[-1] for line in err.splitlines() if line.startswith("mux: test: boundary ")]


# Every step boundary of `mux new` in each mode: found by a run that only reports them,
# and checked against this list, so a step cannot lose its injection point unseen.
STEPS = {
    "plain": ["claimed", "dirs", "run", "started"],
    "repo": ["claimed", "cloned", "dirs", "run", "started"],
    "proxied": ["proxy-started", "claimed", "proxy-wired", "dirs", "run", "started"],
}
# A second signal in the middle of the undo that the first one started.
UNDO_STEPS = {"plain": ["undo_container", "undo_files"], "repo": ["undo_container", "undo_files"],
              "proxied": ["undo_container", "undo_proxy", "undo_files"]}


@pytest.mark.parametrize("mode", list(MODES))
def test_interrupt_at_every_step_leaves_a_session_or_nothing(images, mux_home, unique_name, origin, request,
                                                             mode: str) -> None:
    if mode == "proxied":
        request.getfixturevalue("proxy_config")
    args = [a.format(origin=origin) for a in MODES[mode]]
    code, err = interrupted_new(args, f"{unique_name}-all", "?")
    assert code == 0, err
    assert boundaries_passed(err) == STEPS[mode]
    assert complete(f"{unique_name}-all")
    assert mux("delete", "--force", f"{unique_name}-all").returncode == 0
    cases = [f"{step}:{sig}" for step in STEPS[mode] for sig in ("INT", "TERM")]
    cases += [f"run:TERM,{step}:INT" for step in UNDO_STEPS[mode]]
    for i, inject in enumerate(cases):
        name = f"{unique_name}-{i}"
        code, err = interrupted_new(args, name, inject)
        assert "Traceback" not in err and "Exception ignored" not in err, (inject, err)
        assert code == 130, (inject, code, err)  # "mux: interrupted" (or click's "aborted")
        assert set(inject.replace(":INT", "").replace(":TERM", "").split(",")) <= set(boundaries_passed(err))
        assert nothing_left(name), (inject, err)


# -- labels are input --------------------------------------------------------------------------------

HOSTILE = ["..", ".", "", "a/../..", "-rf", "/etc"]


def test_hostile_labels_are_foreign_and_never_deleted(images, mux_home, unique_name, origin) -> None:
    keep = f"{unique_name}-keep"
    assert mux("new", "--repo", str(origin), keep).returncode == 0
    clone = session_dir(keep) / "repo"
    (clone / "unsaved.txt").write_text("an agent's work\n")
    assert mux("stop", keep).returncode == 0
    other = f"{unique_name}-other"
    assert mux("new", other).returncode == 0
    assert mux("stop", other).returncode == 0
    hostile = [own_container("--label", f"mux.session={label}", BUSYBOX, "true") for label in HOSTILE]
    docker("wait", *hostile)

    shown = [s for s in json.loads(mux("list", "--json", check=True).stdout) if s["status"] == "foreign"]
    assert sorted(s["name"] for s in shown) == sorted(HOSTILE)
    doctor = json.loads(mux("doctor", "--json").stdout)
    containers = next(c for c in doctor["checks"] if c["name"] == "containers")
    assert not containers["ok"] and "no session name" in containers["detail"]

    result = mux("delete", "--all")
    assert result.returncode == 1 and "untracked" in result.stderr  # keep is refused
    assert (clone / "unsaved.txt").read_text() == "an agent's work\n"
    assert session_dir(keep).is_dir() and not session_dir(other).exists()
    assert [docker("container", "inspect", c, check=False).returncode for c in hostile] == [0] * len(hostile)
    assert Path(os.environ["MUX_DATA_DIR"]).is_dir()


# -- instances, renamed and impostor containers -------------------------------------------------------


def test_two_instances_side_by_side_never_see_each_other(images, mux_home, unique_name) -> None:
    mine = f"{unique_name}-a"
    assert mux("new", mine).returncode == 0
    other = {"MUX_INSTANCE": f"{instance()}-b"}
    theirs = f"{unique_name}-b"
    assert mux("new", theirs, env=other).returncode == 0
    try:
        assert set(listed()) == {mine}
        assert {s["name"] for s in json.loads(mux("list", "--json", env=other).stdout)} == {theirs}
        assert mux("delete", "--all", "--force", env=other).returncode == 0
        assert complete(mine)  # untouched: container and files
        assert mux("stop", mine, env=other).returncode == 3
        taken = mux("new", mine, env=other)
        assert taken.returncode == 1 and "not a mux session of this instance" in taken.stderr
        assert complete(mine)
        # Without MUX_INSTANCE, only sessions without an instance label are seen.
        plain = {**os.environ, "MUX_INSTANCE": ""}
        names = {s["name"] for s in json.loads(mux("list", "--json", env=plain).stdout)}
        assert mine not in names
    finally:
        mux("delete", "--all", "--force", env=other)
    assert not session_dir(theirs, env=other).exists()


def test_a_renamed_session_still_works(images, mux_home, unique_name) -> None:
    assert mux("new", unique_name).returncode == 0
    (cid,) = containers_of(unique_name)
    docker("rename", cid, f"renamed-{unique_name}")
    assert mux("exec", unique_name, "--", "true").returncode == 0
    assert mux("stop", unique_name).returncode == 0
    assert mux("start", unique_name).returncode == 0
    printed = mux("attach", "--dry-run", unique_name).stdout
    assert printed == f"docker attach {docker('inspect', '-f', '{{.Id}}', cid).stdout.strip()}\n"
    assert mux("delete", "--force", unique_name).returncode == 0
    assert nothing_left(unique_name)


def test_an_impostor_holding_the_name_is_never_touched(images, mux_home, unique_name) -> None:
    impostor = own_container("--name", f"mux-{unique_name}", BUSYBOX, "sleep", "600")
    for argv in (["stop", unique_name], ["start", unique_name], ["delete", "--force", unique_name],
                 ["exec", unique_name, "--", "true"], ["logs", unique_name]):
        result = mux(*argv)
        assert result.returncode == 3, (argv, result.stderr)
        assert f"container mux-{unique_name} exists but is not a mux session" in result.stderr
    state = json.loads(docker("container", "inspect", impostor).stdout)[0]["State"]
    assert state["Running"] is True


# -- corrupt state -----------------------------------------------------------------------------------


def test_a_corrupt_proxy_registry_is_an_error_naming_it_and_is_kept(images, mux_home, unique_name,
                                                                     proxy_config) -> None:
    registry = Path(os.environ["MUX_DATA_DIR"]) / "proxy" / "sessions.json"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text("{not json")
    result = mux("new", "--proxy", unique_name)
    assert result.returncode == 5, result.stderr
    assert str(registry) in result.stderr
    assert registry.read_text() == "{not json"
    assert nothing_left(unique_name)


def test_a_session_whose_files_are_gone_is_not_started(images, mux_home, unique_name) -> None:
    """docker would re-create a missing bind-mount source empty and owned by root: a
    HOME that mux (not root) could then never remove. Start refuses; delete cleans up."""
    import shutil

    assert mux("new", unique_name).returncode == 0
    assert mux("stop", unique_name).returncode == 0
    shutil.rmtree(session_dir(unique_name))
    for verb in ("start", "attach"):
        refused = mux(verb, unique_name)
        assert refused.returncode == 1, refused.stderr
        assert str(session_dir(unique_name) / "home") in refused.stderr and " gone, " in refused.stderr
        assert f"mux delete --force {unique_name}" in refused.stderr
    assert not session_dir(unique_name).exists()  # nothing re-created
    doctor = json.loads(mux("doctor", "--json").stdout)
    containers = next(c for c in doctor["checks"] if c["name"] == "containers")
    assert "files under the data dir are missing" in containers["detail"]
    assert f"mux delete --force {unique_name}" in containers["fix"]
    assert mux("delete", "--force", unique_name).returncode == 0  # the fix doctor gives works
    assert nothing_left(unique_name)


def test_delete_removes_what_root_made_in_the_clone(images, other_user, unique_name) -> None:
    """run_as_user = false: the agent is root and leaves root-owned files in the clone,
    which the (non-root) user running mux cannot delete. Delete still removes them all,
    or fails naming what is left; it never says "Deleted" with files left."""
    from tests.integration.test_as_user import mux_as

    user = other_user
    config = Path(user["env"]["MUX_CONFIG"])
    config.write_text(config.read_text().replace("[docker]\n", "[docker]\nrun_as_user = false\n"))
    origin = user["base"] / "origin"
    origin.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@e", *args], cwd=origin, check=True)
    for p in [origin, *origin.rglob("*")]:
        os.lchown(p, user["uid"], user["uid"])
    made = mux_as(user, "new", "--repo", str(origin), unique_name)
    assert made.returncode == 0, made.stderr
    (cid,) = containers_of(unique_name)
    docker("exec", cid, "sh", "-c", "mkdir -p /workspace/build/deep && echo x > /workspace/build/deep/out "
           "&& chmod 700 /workspace/build")
    clone = session_dir(unique_name, user["base"] / "data", user["env"]) / "repo"
    assert (clone / "build").stat().st_uid == 0
    deleted = mux_as(user, "delete", "--force", unique_name)
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted session" in deleted.stdout
    assert not clone.parent.exists()
    assert nothing_left(unique_name)


def test_doctor_names_a_half_made_session_and_its_fix_works(images, mux_home, unique_name) -> None:
    """A container docker created but never started (what an interrupted `mux new` of
    an older mux left): doctor names it, and the fix it gives removes it."""
    assert mux("new", unique_name).returncode == 0
    (cid,) = containers_of(unique_name)
    labels = json.loads(docker("container", "inspect", cid).stdout)[0]["Config"]["Labels"]
    half = f"{unique_name}-half"
    session_dir(half).mkdir(parents=True)
    docker("create", "--pull", "never", "--name", f"mux-{half}",
           *[a for k, v in labels.items() for a in ("--label", f"{k}={half if k == 'mux.session' else v}")],
           BUSYBOX, "sleep", "600")
    doctor = json.loads(mux("doctor", "--json").stdout)
    check = next(c for c in doctor["checks"] if c["name"] == "containers")
    assert f"sessions whose container never started: {half}" in check["detail"]
    assert f"`mux delete {half}`" in check["fix"]
    assert mux("delete", half).returncode == 0
    assert nothing_left(half) and complete(unique_name)
    assert next(c for c in json.loads(mux("doctor", "--json").stdout)["checks"] if c["name"] == "containers")["ok"]


def test_the_suite_removes_only_what_carries_its_label(images, unique_name, cleanup_containers) -> None:
    """A container of the user's, named like a test's session, survives the suite's
    clean-up (cleanup_containers and the per-test instance sweep remove by label)."""
    from tests.conftest import remove_own

    users = docker("run", "-d", "--pull", "never", "--name", f"mux-{unique_name}", BUSYBOX, "sleep", "600")
    cid = users.stdout.strip()
    try:
        cleanup_containers.append(f"mux-{unique_name}")
        assert remove_own([f"mux-{unique_name}"], instance()) == []
        assert docker("container", "inspect", cid, check=False).returncode == 0
        ours = own_container("--name", f"mux-{unique_name}-ours", BUSYBOX, "sleep", "600")
        assert remove_own([f"mux-{unique_name}-ours"], instance()) == [ours]
    finally:
        docker("rm", "-f", cid)  # by ID: the one this test made to stand for a user's
