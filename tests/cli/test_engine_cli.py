"""--context and [docker] context reach every docker command of a mux command;
a remote engine refuses a local working directory before anything runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mux.session.sessions import PS_FORMAT
from tests.cli.muxcli import CID, Home, probe, ps_line, ps_one, run


def make_context(home: Home, name: str, host: str) -> None:
    meta = home.root / "docker-config" / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


def ps_on(context: str, name: str | None = None) -> list[str]:
    argv = ["docker", "--context", context, "ps", "-a", "--no-trunc", "--filter", "label=mux.session"]
    if name:
        argv += ["--filter", f"label=mux.session={name}"]
    return argv + ["--format", PS_FORMAT]


@pytest.mark.parametrize("how", ["flag", "config"])
def test_every_docker_call_goes_to_the_chosen_context(home: Home, fp, how: str) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    flags = ["--context", "box"] if how == "flag" else []
    if how == "config":
        home.write_config(home.config.read_text().replace("[docker]\n", '[docker]\ncontext = "box"\n'))
    fp.register(ps_on("box", "s1"), stdout=ps_line("s1", state="exited"))
    result = run(*flags, "attach", "--dry-run", "s1")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"docker --context box start {CID}", f"docker --context box attach {CID}"]


def test_local_workdir_on_remote_engine_is_exit_2_and_runs_nothing(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    result = run("--context", "box", "new", "s1")
    assert result.code == 2
    assert result.err.splitlines()[0] == (
        f"mux: error: the working directory {home.proj} is on this machine, but the engine is context 'box' "
        "(ssh://me@box.test, from --context), on another: a bind mount there would be an empty directory")
    assert "--copy" in result.err.splitlines()[1]
    assert list(fp.calls) == []
    assert not home.session_dir("s1").exists()


def test_unknown_context_is_exit_2(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("--context", "nosuch", "list")
    assert result.code == 2
    assert result.err.splitlines()[0] == "mux: error: --context: there is no docker context named 'nosuch'"
    assert list(fp.calls) == []


def test_docker_failure_names_the_command_not_the_context(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    fp.register(ps_on("box"), returncode=1, stderr="error during connect: ssh: connect to host box.test port 22: "
                "Connection refused\n")
    result = run("--context", "box", "list")
    assert result.code == 4
    assert result.err.splitlines()[0].startswith("mux: error: docker ps failed: error during connect")


def test_copy_dry_run_on_local_engine_prints_volume_steps(home: Home, fp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--copy", "--dry-run", "s1")
    assert result.code == 0, result.err
    first = [line.split()[:3] for line in result.out.splitlines()
             if not line.startswith(("sh -c", "mkdir"))]  # passwd, group; the stage directory
    assert first[:3] == [["docker", "volume", "create"], ["docker", "volume", "create"], ["docker", "create", "-it"]]
    assert "-v mux-s1-workspace:/workspace" in result.out
    assert "-v mux-s1-home:/home/mux" in result.out
    assert "docker cp - mux-s1:/" in result.out  # the tar made by mux (mux/session/safetar.py)


def tar_of_dir(name: str) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    return out.getvalue()


@pytest.mark.parametrize(("args", "there", "expected"), [
    (["s1:out/report.txt", "."], None, ["docker", "cp", f"{'0123abcd' * 8}:/workspace/out/report.txt", "-"]),
    (["./in.txt", "s1:"], "/workspace", ["docker", "cp", "-", f"{'0123abcd' * 8}:/workspace"]),
    (["./a:b", "s1:/tmp/x"], "/tmp/x", ["docker", "cp", "-", f"{'0123abcd' * 8}:/tmp/x"]),
], ids=["out-relative", "in-workspace", "local-colon-absolute"])
def test_cp_argv(home: Home, fp, args: list[str], there: str | None, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    # docker's tar stream crosses through mux: `docker cp SRC -` out, `docker cp - DEST` in
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    if there is not None:  # what the destination is, from the first header of docker's own tar of it
        fp.register(["docker", "cp", f"{'0123abcd' * 8}:{there}", "-"], stdout=tar_of_dir(there.rsplit("/")[-1]))
        (home.proj / args[0].removeprefix("./")).write_text("in\n")
    result = run("cp", "--dry-run", *args)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [" ".join(expected)]


@pytest.mark.parametrize(("args", "message"), [
    (["a.txt", "b.txt"], "give exactly one side as NAME:PATH"),
    (["s1:a", "s2:b"], "give exactly one side as NAME:PATH"),
    (["s1:a", "-"], "invalid local path '-'"),
    (["-rf", "s1:a"], "invalid local path '-rf'"),
], ids=["no-session", "two-sessions", "stdout", "option-like"])
def test_cp_bad_usage_is_exit_2_and_runs_nothing(home: Home, fp, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run("cp", "--", *args)
    assert result.code == 2
    assert message in result.err.splitlines()[0]
    assert list(fp.calls) == []


def test_cp_missing_session_is_exit_3(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("nope"), stdout="")
    fp.register(probe("nope"), returncode=1)
    assert run("cp", "nope:x", ".").code == 3


def test_list_over_several_contexts_warns_about_the_one_that_fails(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    make_context(home, "dead", "ssh://me@dead.test")
    contexts = '[docker]\ncontexts = ["default", "box", "dead"]\n'
    home.write_config(home.config.read_text().replace("[docker]\n", contexts))
    fp.register(ps_on("default"), stdout=ps_line("here"))
    fp.register(ps_on("box"), stdout=ps_line("there", workdir="volume:mux-there-workspace"))
    fp.register(ps_on("dead"), returncode=1, stderr="error during connect: ssh: Could not resolve hostname dead.test\n")
    result = run("list")
    assert result.code == 0, result.err
    assert result.err.splitlines() == [
        "mux: warning: context 'dead' (ssh://me@dead.test) did not answer, its sessions are not listed: "
        "docker ps failed: error during connect: ssh: Could not resolve hostname dead.test"]
    lines = result.out.splitlines()
    assert lines[0].split() == ["NAME", "CONTEXT", "BACKEND", "STATUS", "EXIT", "CREATED", "WORKING", "DIRECTORY"]
    assert [line.split()[:2] for line in lines[1:]] == [["here", "default"], ["there", "box"]]
    fp.register(ps_on("default"), stdout=ps_line("here"))
    fp.register(ps_on("box"), stdout=ps_line("there", workdir="volume:mux-there-workspace"))
    fp.register(ps_on("dead"), returncode=1, stderr="boom\n")
    data = json.loads(run("list", "--json").out)
    assert [(d["name"], d["context"], d["workdir_exists"]) for d in data] == [("here", "default", False),
                                                                            ("there", "box", True)]


def test_context_flag_lists_only_that_engine(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    home.write_config(home.config.read_text().replace("[docker]\n", '[docker]\ncontexts = ["default", "box"]\n'))
    fp.register(ps_on("box"), stdout=ps_line("there"))
    result = run("--context", "box", "list", "--json")
    assert [(d["name"], d["context"]) for d in json.loads(result.out)] == [("there", "box")]


@pytest.mark.parametrize("how", ["flag", "config", "allowlist"])
def test_proxy_only_on_a_remote_engine_dry_run_prints_tunnel_network_and_relay_there(home: Home, fp, how: str) -> None:  # type: ignore[no-untyped-def]
    from mux.egress import relay as egress

    make_context(home, "box", "ssh://me@box.test")
    proxy = {"flag": "", "config": 'egress = "proxy-only"\n',
             "allowlist": '[proxy.filters]\nallowlist_only = true\nallowed_domains = ["example.test"]\n'}[how]
    home.write_config(home.config.read_text() + "\n[proxy]\nport = 18080\n" + proxy)
    box = ["docker", "--context", "box"]
    fp.register([*box, "network", "inspect", "--format", "{{json .IPAM.Config}}", "bridge"],
                stdout='[{"Subnet":"172.30.0.0/16","Gateway":"172.30.0.1"}]\n')
    fp.register([*box, "network", "inspect", fp.any()], returncode=1)  # no egress network there yet
    fp.register([*box, "container", "inspect", fp.any()], returncode=1)  # nor its relay
    fp.register([*box, "version", "--format", "{{.Server.Arch}}"], stdout="amd64\n")
    fp.register([*box, "image", "inspect", "--format", "{{.Id}}", fp.any()], returncode=1)  # no relay image
    fp.register(["ssh", "-S", fp.any(min=1, max=1), "-O", "check", fp.any()], returncode=255)  # no tunnel yet
    flags = ["--egress", "proxy-only"] if how == "flag" else []
    result = run("--context", "box", "new", "--dry-run", "--copy", *flags, "s1")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    relay, network = egress.relay_name(18080), egress.network_name()
    assert lines[0].startswith("ssh -N -M -S ") and lines[0].endswith(" -l me -- box.test")
    assert lines[1].endswith(" -O forward -R 172.30.0.1:18080:127.0.0.1:18080 -l me -- box.test")
    assert lines[2] == (f"docker --context box network create --internal -o {egress.INHIBIT}=true "
                        f"--label {egress.NETWORK_LABEL}=proxy-only {network}")
    # The relay's own image, built there from this machine's files (no registry).
    digest = hashlib.sha256((egress.RELAY_BIN / "Dockerfile").read_bytes()
                            + (egress.RELAY_BIN / "mux-relay-amd64").read_bytes()).hexdigest()[:12]
    image = f"mux-relay:amd64-{digest}"
    assert lines[3] == (f"docker --context box build -q --label mux.helper=relay --build-arg ARCH=amd64 "
                        f"-t {image} {egress.RELAY_BIN}")
    # The relay on that engine forwards to the tunnel's end there, not to this machine's bridge.
    assert lines[4].startswith(f"docker --context box create --name {relay} ")
    assert " --read-only --no-healthcheck " in lines[4] and " --cap-drop ALL " in lines[4]
    assert lines[4].endswith(f" {image} 18080 172.30.0.1 18080")
    assert lines[5] == f"docker --context box network connect --alias mux-proxy-18080 {network} {relay}"
    assert lines[6] == f"docker --context box start {relay}"
    made = next(ln for ln in lines if ln.startswith("docker --context box create -it"))
    assert f" --network {network} " in made and "--add-host" not in made
    assert not home.session_dir("s1").exists()


@pytest.mark.parametrize("forwarded", [False, True], ids=["master-up", "master-and-forward-up"])
def test_dry_run_prints_only_the_tunnel_steps_a_run_would_take(home: Home, fp, forwarded: bool) -> None:  # type: ignore[no-untyped-def]
    """A tunnel whose ssh master is up is not started again; a forward its state
    file records is not added again: --dry-run prints what would run, nothing more."""
    import hashlib

    make_context(home, "box", "ssh://me@box.test")
    home.write_config(home.config.read_text() + "\n[proxy]\nport = 18080\n")
    fp.register(["docker", "--context", "box", "network", "inspect", "--format", "{{json .IPAM.Config}}", "bridge"],
                stdout='[{"Subnet":"172.30.0.0/16","Gateway":"172.30.0.1"}]\n')
    fp.register(["ssh", "-S", fp.any(min=1, max=1), "-O", "check", fp.any()], returncode=0)  # the master is up
    if forwarded:
        key = hashlib.sha256(f"{home.data}\0ssh://me@box.test".encode()).hexdigest()[:16]  # mux/egress/tunnel.py
        (home.data / "tunnels").mkdir(parents=True)
        (home.data / "tunnels" / f"{key}.json").write_text(
            '{"host": "ssh://me@box.test", "context": "box", "forwards": ["172.30.0.1:18080:127.0.0.1:18080"]}')
    result = run("--context", "box", "new", "--dry-run", "--copy", "s1")
    assert result.code == 0, result.err
    ssh = [ln.split(" -S ", 1)[1].split(" ", 1)[1] for ln in result.out.splitlines() if ln.startswith("ssh ")]
    assert ssh == ([] if forwarded else ["-O forward -R 172.30.0.1:18080:127.0.0.1:18080 -l me -- box.test"])


def test_proxy_needs_an_ssh_engine_to_tunnel_through(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "tcpbox", "tcp://box.test:2376")
    home.write_config(home.config.read_text() + "\n[proxy]\nport = 18080\n")
    result = run("--context", "tcpbox", "new", "--copy", "s1")
    assert result.code == 2, result.err
    assert "reaches a remote engine only over ssh" in result.err.splitlines()[0]
    assert list(fp.calls) == []


def test_proxy_status_lists_the_tunnels_up_or_down_with_their_sessions(home: Home, fp, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from mux.egress import tunnel
    from mux.engine.choice import Engine

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the control sockets' directory
    up, down = Engine("box", "ssh://me@box.test", "test"), Engine("default", "ssh://me@dead.test:2222", "test")
    bad = Engine("default", "ssh://-oProxyCommand=touch${IFS}x", "test")
    (home.data / "tunnels").mkdir(parents=True)
    for engine, state in ((up, {"context": "box", "forwards": ["172.30.0.1:18080:127.0.0.1:18080"]}),
                          (down, {"forwards": ["172.31.0.1:18080:127.0.0.1:18080", "1.2.3.4;rm:1:x:2"]}),
                          (bad, {"forwards": []})):
        tunnel._files(engine)[1].write_text(json.dumps({"host": engine.host, **state}))
    (home.data / "tunnels" / "0123456789abcdef.json").write_text(json.dumps({"host": up.host}))  # not its name
    sock = tunnel._files(up)[0]
    sock.touch()  # its ssh master's control socket; dead.test has none: down without asking ssh
    for name, host in (("s1", up.host), ("s2", up.host), ("s3", down.host)):
        home.session_dir(name).mkdir(parents=True)
        (home.session_dir(name) / "proxy.env").write_text("HTTP_PROXY=x\n")
        (home.session_dir(name) / "engine").write_text(host + "\n")
    fp.register(["ssh", "-S", str(sock), "-O", "check", "-l", "me", "--", "box.test"], stderr="Master running\n")
    result = run("proxy", "status")
    assert result.code == 5  # the proxy itself does not run; the tunnels are listed anyway
    assert result.out.splitlines()[1:] == [
        "tunnel: context 'box' (ssh://me@box.test): up, listening there on 172.30.0.1:18080; sessions: s1, s2",
        "tunnel: ssh://me@dead.test:2222: down, listening there on 172.31.0.1:18080; sessions: s3",
    ]  # by endpoint
    fp.register(["ssh", "-S", str(sock), "-O", "check", "-l", "me", "--", "box.test"], returncode=255)
    data = json.loads(run("proxy", "status", "--json").out)
    assert data["tunnels"] == [
        {"context": "box", "host": "ssh://me@box.test", "listen": ["172.30.0.1:18080"], "up": False,
         "sessions": ["s1", "s2"]},
        {"context": "", "host": "ssh://me@dead.test:2222", "listen": ["172.31.0.1:18080"], "up": False,
         "sessions": ["s3"]},
    ]


def repo_cache(home: Home) -> str:
    """The sccache volume of home.proj's repository ([docker.rust] cache_scope = "repo")."""
    return "mux_sccache-repo-" + hashlib.sha256(str(home.proj).encode()).hexdigest()[:16]


def test_sccache_dry_run_on_remote_engine_prints_every_volume_step(home: Home, fp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    binary = tmp_path / "bin" / "sccache"
    binary.parent.mkdir()
    binary.write_bytes(b"\x7fELF" + b"\0" * 60)
    binary.chmod(0o755)
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    home.write_config(home.config.read_text() + f'[docker.rust]\nsccache = true\nbinary = "{binary}"\n')
    # The cache is there already; the program (this binary) is not.
    fp.register(["docker", "--context", "box", "volume", "ls", "-q", "--filter", "label=mux.volume"],
                stdout=f"{repo_cache(home)}\nmux_sccache-0000\n")
    result = run("--context", "box", "new", "--copy", "--dry-run", "s1")
    assert result.code == 0, result.err
    program, stage = f"mux_sccache-{digest}", home.session_dir("s1") / "stage"
    helper = f"mux_fill_{program}"
    lines = result.out.splitlines()
    start = lines.index(f"docker --context box volume create --label mux.volume=program --label mux.program=sccache "
                        f"--label mux.digest=sha256:{digest} {program}")
    assert lines[start + 1:start + 7] == [
        f"docker --context box create --name {helper} --label mux.helper=fill --pull never --network none "
        f"-v {program}:/muxfill mux-test/busybox true",
        f"mkdir -p {stage}/muxfill",
        f"docker --context box cp {stage}/muxfill {helper}:/",
        f"docker --context box cp -L {binary} {helper}:/muxfill/sccache",
        f"docker --context box rm -f {helper}",
        f"rm -rf {stage}/muxfill",
    ]
    assert "volume create --label mux.volume=sccache" not in result.out  # the cache is reused
    made = next(ln for ln in lines if ln.startswith("docker --context box create -it"))
    assert f"-v {repo_cache(home)}:/mux/sccache -v {program}:/opt/mux/sccache:ro" in made
    assert f"{binary}:" not in made  # no path of this machine is mounted there
    link = f"{stage}/link0/sccache"
    assert lines.index(f"ln -s /opt/mux/sccache/sccache {link}") < lines.index(
        f"docker --context box cp {link} mux-s1:/usr/local/bin") < lines.index("docker --context box start mux-s1")
    assert not home.session_dir("s1").exists()


def test_failed_copy_into_a_volume_removes_it_and_keeps_the_shared_cache(home: Home, fp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    binary = tmp_path / "sccache"
    binary.write_bytes(b"\x7fELF" + b"\0" * 60)
    binary.chmod(0o755)
    program = f"mux_sccache-{hashlib.sha256(binary.read_bytes()).hexdigest()}"
    home.write_config(home.config.read_text() + f'[docker.rust]\nsccache = true\nbinary = "{binary}"\n')
    box = ["docker", "--context", "box"]
    fp.register([*box, "volume", "ls", "-q", "--filter", "label=mux.volume"], stdout="")
    fp.register([*box, "cp", "-L", str(binary), fp.any()], returncode=1,
                stderr="Error response from daemon: no space left on device\n")
    fp.register([*box, fp.any()], occurrences=20)
    result = run("--context", "box", "new", "--copy", "s1")
    assert result.code == 4, result.err
    assert "no space left on device" in result.err
    calls = [list(c) for c in fp.calls]
    # The half-filled program volume and its helper are removed; the cache, filled, stays.
    failed = calls.index([*box, "cp", "-L", str(binary), f"mux_fill_{program}:/muxfill/sccache"])
    assert calls[failed + 1:failed + 3] == [[*box, "rm", "-f", f"mux_fill_{program}"], [*box, "volume", "rm", program]]
    assert [*box, "volume", "create", "--label", "mux.volume=sccache", repo_cache(home)] in calls
    assert not any(c[3:5] == ["volume", "rm"] and repo_cache(home) in c for c in calls)
    assert not any(c[3:4] == ["create"] and "-it" in c for c in calls)  # no session container was made
    assert not home.session_dir("s1").exists()


def test_a_volume_another_mux_is_filling_is_left_to_it(home: Home, fp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    home.write_config(home.config.read_text() + '[docker.rust]\nsccache = true\nimage_binary = "/usr/bin/sccache"\n')
    box = ["docker", "--context", "box"]
    fp.register([*box, "volume", "ls", "-q", "--filter", "label=mux.volume"], stdout="")
    fp.register([*box, "create", "--name", f"mux_fill_{repo_cache(home)}", fp.any()], returncode=125,
                stderr=f'docker: Error response from daemon: Conflict. The container name '
                f'"/mux_fill_{repo_cache(home)}" is already in use by container "e1f2".\n')
    fp.register([*box, fp.any()], occurrences=20)
    result = run("--context", "box", "new", "--copy", "s1")
    assert result.code == 4, result.err
    assert result.err.splitlines()[0] == (f"mux: error: another mux is copying files into volume {repo_cache(home)} "
                                          "right now")
    assert not any("rm" in c[3:5] for c in map(list, fp.calls))  # neither its helper nor its volume
    assert not home.session_dir("s1").exists()


def test_session_volumes_read_back_are_checked(home: Home, fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from mux.engine import argv as A
    from mux.engine.runner import Runner
    from mux.session.volumes import sessions_volumes, unfinished_fills

    monkeypatch.setenv("MUX_INSTANCE", "i1")
    fp.register(["docker", *A.volume_ls_argv(instance="i1")], stdout=(
        "mux-a-home\ta\ti1\n"
        "mux-b-home\tb\ti2\n"  # another instance's (a filter docker was not given, say)
        "mux-..-home\t..\ti1\n"  # no session name
        "mux-c-home\td\ti1\n"  # not named for its label's session
        "mux-d-cargo\td\ti1\n"))
    assert sessions_volumes(Runner()) == [("mux-a-home", "a"), ("mux-d-cargo", "d")]
    fp.register(["docker", *A.ps_argv('{{.Names}}\t{{.Label "mux.instance"}}', instance="i1", label="mux.helper=fill")],
                stdout="mux_fill_mux_i1_sccache\ti1\nmux_fill_x\ti2\nmux-other\ti1\nmux_fill_-rf /\ti1\n")
    assert unfinished_fills(Runner()) == [("mux_fill_mux_i1_sccache", "mux_i1_sccache")]


def test_dry_run_delete_of_the_last_remote_proxy_only_session_prints_what_goes_there(  # type: ignore[no-untyped-def]
        home: Home, fp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from mux.egress import relay as egress
    from mux.egress import tunnel
    from mux.engine import argv as A
    from mux.engine.choice import Engine

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    make_context(home, "box", "ssh://me@box.test")
    sock = tunnel._files(Engine("box", "ssh://me@box.test", "test"))[0]
    sock.touch()  # the tunnel to box runs
    home.session_dir("s1").mkdir(parents=True)
    (home.session_dir("s1") / "proxy.env").write_text("HTTP_PROXY=x\n")
    (home.session_dir("s1") / "engine").write_text("ssh://me@box.test\n")
    box = ["docker", "--context", "box"]
    fp.register(ps_on("box", "s1"), stdout=ps_line("s1", egress="proxy-only", workdir="volume:mux-s1-workspace"))
    fp.register([*box, *A.volume_ls_argv(instance=None)], stdout="mux-s1-workspace\ts1\nmux-s1-home\ts1\n")
    relay = egress.relay_name(18080)
    fp.register([*box, "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{end}}",
                 egress.network_name()], stdout=f"mux-s1 {relay} \n")
    result = run("--context", "box", "delete", "--force", "--dry-run", "s1")
    assert result.code == 0, result.err
    assert result.out.splitlines()[1:] == [
        "docker --context box volume rm mux-s1-workspace mux-s1-home",
        f"ssh -S {sock} -O exit -l me -- box.test",
        f"docker --context box rm -f {relay}",
        f"docker --context box network rm {egress.network_name()}",
        f"rm -rf {home.session_dir('s1')}",
    ]
    assert result.out.splitlines()[0] == f"docker --context box rm -f {CID}"
    assert home.session_dir("s1").exists() and sock.exists()
