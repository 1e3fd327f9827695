"""`mux new --agent`: the printed commands (the agent's wrapper, its PATH) and the one `docker run`."""

from __future__ import annotations

import os
from pathlib import Path

from mux.engine.runner import quote, write_argv
from mux.session import agentshell
from tests.cli.muxcli import IMAGE, Home, run

CONFIG = (f'[docker]\nimage = "{IMAGE}"\npull = "never"\n[git]\ninject_config = false\n'
          '[agents.codex]\nbinary = "{binary}"\nargs = ["-c", "openai_base_url=https://gw.corp.test/v1"]\n'
          '[credentials.gw]\ndomains = ["gw.corp.test"]\nauth_type = "bearer"\nvalue = "x"\n')


def test_dry_run_shows_the_wrapper_and_the_path_from_the_image(home: Home, fp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    binary = tmp_path / "codex"
    binary.write_bytes(b"\x7fELF" + b"\0" * 60)
    binary.chmod(0o755)
    home.write_config(CONFIG.format(binary=binary))
    if os.getuid() == 0:  # mux as root: the agent runs as the working directory's owner
        os.chown(home.proj, 4242, 4242)
    info = (Path(__file__).parent.parent / "unit" / "docker_info" / "debian-docker.io-20.10-recorded.json").read_text()
    fp.register(["docker", "info", "--format", "{{json .}}"], stdout=info)  # the proxy's address: a plain engine
    fp.register(["docker", *agentshell.image_env_argv(IMAGE)], stdout='["PATH=/image/bin:/bin","LANG=C.UTF-8"]\n')
    result = run("new", "--dry-run", "--agent", "codex", "s1", "--", "resume")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    bin_dir = home.session_dir("s1") / "bin"
    hint = ("codex is not in this image and no host binary is mounted for it: "
            + "install Codex on the host (`npm install -g @openai/codex` ships a static binary mux can mount), "
            + "set [agents.codex] binary, or use an image that has it")
    wrapper = agentshell.wrapper("codex", ("-c", "openai_base_url=https://gw.corp.test/v1"), "/opt/mux/agents", hint)
    # What is written, printed in full: the wrapper (the agent's arguments in it), the login snippet.
    at = lines.index(f"mkdir -p -m 755 {bin_dir}")
    assert lines[at + 1:at + 5] == [
        quote(write_argv(bin_dir / "codex", wrapper)[0]), f"chmod 555 {bin_dir}/codex",
        quote(write_argv(bin_dir / ".profile", agentshell.PROFILE_TEXT)[0]), f"chmod 444 {bin_dir}/.profile"]
    run_line = lines[-1]
    assert run_line.startswith("docker run ")
    assert f" -v {binary}:/opt/mux/agents/codex:ro -v {bin_dir}:/opt/mux/bin:ro " \
           f"-v {bin_dir}/.profile:/etc/profile.d/mux-agent.sh:ro " in run_line
    assert " -e PATH=/opt/mux/bin:/image/bin:/bin " in run_line  # the image's PATH, behind the wrapper
    assert run_line.endswith(f" --pull never {IMAGE} /opt/mux/bin/codex resume")  # the wrapper is the command
    assert [c[:3] for c in fp.calls] == [["docker", "image", "inspect"], ["docker", "info", "--format"]]
    assert not home.data.joinpath("sessions").exists()  # a dry run writes nothing
