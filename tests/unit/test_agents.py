"""mux.session.agents: presets + [agents.NAME] -> the session's command, variables and mounts (pure)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mux import __version__
from mux import config as C
from mux.configfile import loads as toml_loads
from mux.engine import argv as A
from mux.errors import ConfigError
from mux.session.agents import AGENT_DIR, PLACEHOLDER, agent_user, missing_rules
from mux.session.plan import HostFacts, NewOptions, build_spec
from mux.session.presets import _claude_binary, _codex_binary
from tests.cli.muxcli import protected_mounts

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
ANTHROPIC = '[credentials.anthropic]\ndomains = ["api.anthropic.com"]\nheader = "x-api-key"\nvalue = "${K}"\n'


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host user's HOME; PATH holds no agent, so only a configured binary is mounted."""
    (tmp_path / "home").mkdir()
    (tmp_path / "proj").mkdir()
    (tmp_path / "empty-path").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    return tmp_path / "home"


def elf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF" + b"\0" * 60)
    path.chmod(0o755)
    return path


def host(home: Path, uid: int = 1000, **env: str) -> HostFacts:
    return HostFacts(uid=uid, gid=1001, env={"HOME": str(home), **env}, cwd=home.parent / "proj", now=NOW,
                     data_dir=home.parent / "data")


def config(home: Path, text: str) -> C.Config:
    path = home.parent / "config.toml"
    return C.parse(toml_loads(text), path, {"HOME": str(home)})


def spec_for(home: Path, text: str, uid: int = 1000, host_env: dict[str, str] | None = None, **opts: object):
    opts.setdefault("name", "s1")
    return build_spec(config(home, '[git]\ninject_config = false\n' + text),
                      NewOptions(**opts), host(home, uid, **(host_env or {})))  # type: ignore[arg-type]


def test_claude_headless_whole_argv(home: Path) -> None:
    binary = elf(home.parent / "bin" / "claude")
    spec = spec_for(home, f'[docker]\nimage = "img"\n[agents.claude]\nbinary = "{binary}"\n' + ANTHROPIC,
                    agent="claude", prompt="fix it", headless=True, command=("--model", "opus"))
    data = home.parent / "data" / "sessions" / "s1"
    proj = home.parent / "proj"
    assert A.run_argv(spec) == [
        "run", "-d", "--init", "--name", "mux-s1",  # no -it: one-shot output goes to the logs
        "--cidfile", f"{data}/container.id", "--hostname", "s1",
        "--label", "mux.session=s1", "--label", "mux.backend=docker", "--label", f"mux.workdir={proj}",
        "--label", "mux.image=img", "--label", "mux.created=2026-01-02T03:04:05Z",
        "--label", f"mux.version={__version__}",
        "--label", "mux.agent=claude",
        "-v", f"{proj}:/workspace", "-w", "/workspace", "-u", "1000:1001",
        "-v", f"{data}/home:/home/mux", "-e", "HOME=/home/mux",
        "-v", f"{data}/passwd:/etc/passwd:ro", "-v", f"{data}/group:/etc/group:ro",
        *protected_mounts(proj, data),
        "-v", f"{binary}:{AGENT_DIR}/claude:ro",
        # the agent's wrapper, also what every shell there finds; login shells' PATH snippet
        "-v", f"{data}/bin:/opt/mux/bin:ro", "-v", f"{data}/bin/.profile:/etc/profile.d/mux-agent.sh:ro",
        "-e", f"ANTHROPIC_API_KEY={PLACEHOLDER}",
        "-e", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "-e", "DISABLE_AUTOUPDATER=1",
        "-e", "DISABLE_TELEMETRY=1", "-e", "DISABLE_ERROR_REPORTING=1",
        "--pids-limit", "4096", *A.SECURITY, "--stop-signal", "SIGHUP", "--stop-timeout", "10", "img",
        "/opt/mux/bin/claude", "--model", "opus", "-p", "--", "fix it",
    ]
    (wrapper, text, mode), (profile, _, _) = spec.scripts
    assert (wrapper, mode, profile) == (data / "bin" / "claude", 0o555, data / "bin" / ".profile")
    assert "claude is not in this image" in text


@pytest.mark.parametrize(("agent", "rule", "opts", "tail", "args", "keys"), [
    pytest.param("claude", ANTHROPIC, {"prompt": "-v is broken"}, ["--", "-v is broken"], "",
                 ["ANTHROPIC_API_KEY"], id="claude-first-message"),
    pytest.param("claude", ANTHROPIC.replace('header = "x-api-key"', 'auth_type = "bearer"'), {},
                 [], "", ["CLAUDE_CODE_OAUTH_TOKEN"], id="claude-oauth-token"),
    # codex's own arguments are in its wrapper: the main process and every shell get them
    pytest.param("codex", '[credentials.o]\ndomains = ["api.openai.com"]\nauth_type = "bearer"\nvalue = "x"\n',
                 {"prompt": "go", "headless": True}, ["exec", "--skip-git-repo-check", "--", "go"],
                 'set -- -c check_for_update_on_startup=false -c analytics.enabled=false "$@"\n',
                 ["OPENAI_API_KEY", "CODEX_API_KEY"], id="codex-exec"),
    pytest.param("gemini", '[credentials.g]\ndomains = ["*.googleapis.com"]\nheader = "x-goog-api-key"\n'
                 'value = "x"\n', {"prompt": "hi"}, ["-i", "hi"], "", ["GEMINI_API_KEY"], id="gemini"),
])
def test_presets(home: Path, agent: str, rule: str, opts: dict, tail: list[str], args: str,
                 keys: list[str]) -> None:
    spec = spec_for(home, rule, agent=agent, **opts)
    assert list(spec.command) == [f"/opt/mux/bin/{agent}", *tail]
    wrapper = spec.scripts[0][1]
    assert args in wrapper and ("set --" in wrapper) is bool(args)
    env = dict(spec.env)
    assert [k for k, v in spec.env if v == PLACEHOLDER] == keys
    assert spec.tty is not opts.get("headless", False)
    assert ("mux.agent", agent) in spec.labels
    assert "ANTHROPIC_API_KEY" not in env or env["ANTHROPIC_API_KEY"] == PLACEHOLDER
    assert not any(v.endswith(f"{AGENT_DIR}/{agent}:ro") for v in tuple(m.text for m in spec.mounts))  # nothing on PATH


def test_custom_base_url_needs_a_rule_for_its_host(home: Path) -> None:
    base = '[agents.claude]\nenv = ["ANTHROPIC_BASE_URL=https://gw.example.test:8443/v1"]\n'
    with pytest.raises(ConfigError) as info:
        spec_for(home, base + ANTHROPIC, agent="claude")
    assert info.value.exit_code == 2
    assert "no [credentials.*] rule covers gw.example.test" in info.value.message
    rule = ANTHROPIC.replace("api.anthropic.com", "*.example.test")
    assert ("ANTHROPIC_BASE_URL", "https://gw.example.test:8443/v1") in spec_for(home, base + rule,
                                                                                  agent="claude").env


@pytest.mark.parametrize(("text", "opts", "env", "message"), [
    pytest.param("", {"agent": "claude"}, None, "no [credentials.*] rule covers api.anthropic.com", id="no-rule"),
    pytest.param(ANTHROPIC, {"agent": "claude", "env": ("ANTHROPIC_API_KEY",)}, {"ANTHROPIC_API_KEY": "sk"},
                 "ANTHROPIC_API_KEY is set by --env, [docker] env", id="key-by-env"),
    pytest.param('[docker]\nenv = ["ANTHROPIC_API_KEY=sk-real"]\n' + ANTHROPIC, {"agent": "claude"}, None,
                 "ANTHROPIC_API_KEY is set by --env, [docker] env", id="key-in-docker-env"),
    pytest.param('[agents.claude]\nenv = ["ANTHROPIC_API_KEY=sk-real"]\n' + ANTHROPIC, {"agent": "claude"},
                 {"ANTHROPIC_API_KEY": "sk"}, "or [agents.claude] env", id="key-in-agent-env"),
    pytest.param(ANTHROPIC, {"agent": "claude", "headless": True}, None, "--headless needs --prompt",
                 id="headless-no-prompt"),
    pytest.param(ANTHROPIC, {"prompt": "x"}, None, "--prompt and --headless need --agent", id="prompt-no-agent"),
    pytest.param(ANTHROPIC, {"agent": "claude", "proxy": False}, None, "not --no-proxy", id="no-proxy"),
    pytest.param(ANTHROPIC, {"agent": "claude", "network": "none"}, None, "not --network none", id="network-none"),
    pytest.param(ANTHROPIC, {"agent": "aider"}, None, "unknown agent 'aider' (known: claude, codex, gemini)",
                 id="unknown"),
    pytest.param('[agents.mine]\ncommand = "mine"\n', {"agent": "mine"}, None, "needs api_host, key_env",
                 id="custom-incomplete"),
    pytest.param('[agents.claude]\nbinary = "/nonexistent/claude"\n' + ANTHROPIC, {"agent": "claude"}, None,
                 "binary '/nonexistent/claude' does not exist", id="binary-missing"),
])
def test_refusals(home: Path, text: str, opts: dict, env: dict | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        spec_for(home, text, host_env=env, **opts)
    assert info.value.exit_code == 2
    assert message in info.value.message


def test_script_binary_is_refused(home: Path) -> None:
    script = home.parent / "codex.js"
    script.write_text("#!/usr/bin/env node\n")
    script.chmod(0o755)
    with pytest.raises(ConfigError, match="is a script, not a self-contained executable"):
        spec_for(home, f'[agents.claude]\nbinary = "{script}"\n' + ANTHROPIC, agent="claude")


def test_custom_agent(home: Path) -> None:
    spec = spec_for(home, '[agents.mine]\ncommand = "mine"\nargs = ["--yes"]\napi_host = "api.mine.test"\n'
                    'key_env = ["MINE_KEY"]\n[credentials.m]\ndomains = ["api.mine.test"]\nvalue = "x"\n',
                    agent="mine", command=("run",))
    assert list(spec.command) == ["/opt/mux/bin/mine", "run"]
    assert 'set -- --yes "$@"\n' in spec.scripts[0][1]  # the agent's own arguments, in its wrapper
    assert ("MINE_KEY", PLACEHOLDER) in spec.env


def test_root_never_runs_the_agent(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    if os.getuid() != 0:
        pytest.skip("needs root to give the directory to another uid")
    with pytest.raises(ConfigError, match="an agent never runs as root"):
        agent_user(0, 0, work)
    os.chown(work, 4242, 4343)
    assert agent_user(0, 0, work) == "4242:4343"
    assert agent_user(1000, 1001, work) == "1000:1001"


def test_share_mounts_read_only_under_the_session_home(home: Path) -> None:
    (home / ".claude" / "commands").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"model": "x"}')
    # Prose about secrets is not a secret.
    (home / ".claude" / "commands" / "review.md").write_text("Never print a password or an API key.\n")
    spec = spec_for(home, '[agents.claude]\nshare = ["~/.claude/settings.json", "~/.claude/commands"]\n' + ANTHROPIC,
                    agent="claude")
    assert f"{home}/.claude/settings.json:/home/mux/.claude/settings.json:ro" in tuple(m.text for m in spec.mounts)
    assert f"{home}/.claude/commands:/home/mux/.claude/commands:ro" in tuple(m.text for m in spec.mounts)


@pytest.mark.parametrize(("files", "share", "message"), [
    pytest.param({".claude/.credentials.json": "{}"}, "~/.claude/.credentials.json", "is a credential file",
                 id="claude-credentials"),
    pytest.param({".codex/auth.json": "{}"}, "~/.codex", "is a credential file", id="codex-auth-in-dir"),
    pytest.param({".claude/settings.json": '{"apiKeyHelper": "pass show x"}'}, "~/.claude/settings.json",
                 "looks like it holds a credential", id="api-key-helper"),
    pytest.param({".claude/CLAUDE.md": "use sk-ant-api03-xyz"}, "~/.claude/CLAUDE.md",
                 "looks like it holds a credential", id="key-in-text"),
    pytest.param({".claude/settings.json": '{"env": {"ANTHROPIC_API_KEY": "x"}}'}, "~/.claude/settings.json",
                 "looks like it holds a credential", id="key-variable-in-settings"),
    pytest.param({".claude/agents/a.md": "curl -H 'Authorization: Bearer abcdefghijklmnopqrstu'"},
                 "~/.claude/agents", "looks like it holds a credential", id="bearer-token"),
    pytest.param({".aws/config": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                  "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"}, "~/.aws",
                 "(an AWS access key ID, line 2)", id="aws-key-pair"),
    pytest.param({".claude/CLAUDE.md": "token ghp_16C7e42F292c6912E7710c838347Ae178B4a"}, "~/.claude/CLAUDE.md",
                 "(a GitHub token, line 1)", id="github-token"),
    pytest.param({".claude/mcp.json": '{"db": "postgres://app:hunter2secret@db.test/app"}'}, "~/.claude/mcp.json",
                 "(a URL with a password, line 1)", id="postgres-url"),
    pytest.param({".config/tool/id": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"}, "~/.config/tool",
                 "(a private key block, line 1)", id="private-key-block"),
    pytest.param({}, "~/.claude/missing.json", "does not exist", id="listed-but-missing"),
    pytest.param({}, "/etc/hostname", "not under your home", id="outside-home"),
])
def test_share_refusals(home: Path, files: dict, share: str, message: str) -> None:
    for rel, text in files.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    with pytest.raises(ConfigError) as info:
        spec_for(home, f'[agents.claude]\nshare = ["{share}"]\n' + ANTHROPIC, agent="claude")
    assert info.value.exit_code == 2 and message in info.value.message
    for secret in ("wJalrXUt", "ghp_16C7", "hunter2", "AKIAIOSF"):  # the kind is named, never the value
        assert secret not in info.value.message


def test_codex_binary_found_inside_the_npm_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scope = tmp_path / "lib" / "node_modules" / "@openai"
    script = scope / "codex" / "bin" / "codex.js"
    script.parent.mkdir(parents=True)
    script.write_text("#!/usr/bin/env node\n")
    script.chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "codex").symlink_to(script)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert _codex_binary() is None  # the script alone: nothing to mount
    binary = elf(scope / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex")
    assert _codex_binary() == binary


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("[agents.Claude]\n", "agent name 'Claude' must be", id="bad-name"),
    pytest.param("[agents.claude]\nimage = 'x'\n", "unknown key 'image'", id="unknown-key"),
    pytest.param("[agents.claude]\nkey_env = ['A-B']\n", "'A-B' is not a variable name", id="bad-key-env"),
    pytest.param("[agents.claude]\nargs = 'x'\n", "expected a list of strings", id="args-not-list"),
    pytest.param("[agents.claude]\ncommand = 'claude --yes'\n", "is not a program name", id="command-spaces"),
    pytest.param("[agents.claude]\ncommand = '/opt/'\n", "is not a program name", id="command-dir"),
])
def test_config_errors(home: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        config(home, text)


def test_config_init_rules(home: Path) -> None:
    text = missing_rules(("claude", "codex"), C.Config())
    assert '[credentials.anthropic]\ndomains = ["api.anthropic.com"]\nheader = "x-api-key"\n' in text
    assert 'auth_type = "bearer"\nvalue = "${OPENAI_API_KEY}"' in text
    parsed = config(home, text)
    assert missing_rules(("claude", "codex"), parsed) == ""


def test_claude_binary_of_an_npm_install_without_postinstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scope = tmp_path / "lib" / "node_modules" / "@anthropic-ai"
    stub = scope / "claude-code" / "bin" / "claude.exe"
    stub.parent.mkdir(parents=True)
    stub.write_text("echo 'claude: postinstall did not run'\n")  # npm's placeholder
    stub.chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "claude").symlink_to(stub)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert _claude_binary() is None
    native = elf(scope / "claude-code-linux-x64" / "claude")
    assert _claude_binary() == native
    stub.unlink()
    stub.symlink_to(native)  # after postinstall: the command itself is the binary
    assert _claude_binary() == native


def test_codex_base_url_setting_moves_its_api_host(home: Path) -> None:
    rule = '[credentials.o]\ndomains = ["api.openai.com"]\nauth_type = "bearer"\nvalue = "x"\n'
    with pytest.raises(ConfigError, match=r"no \[credentials.\*\] rule covers gw.corp.test"):
        spec_for(home, rule, agent="codex", command=("-c", 'openai_base_url="https://gw.corp.test/v1"'))
    spec = spec_for(home, rule.replace("api.openai.com", "gw.corp.test"), agent="codex",
                    command=("-c", "openai_base_url=https://gw.corp.test/v1"))
    assert "openai_base_url=https://gw.corp.test/v1" in spec.command  # this session's: its main process only


def test_agent_gets_a_user_and_home_even_without_run_as_user(home: Path) -> None:
    spec = spec_for(home, "[docker]\nrun_as_user = false\n" + ANTHROPIC, agent="claude")
    assert spec.user == "1000:1001"  # never the image's (often root) user
    assert spec.home == home.parent / "data" / "sessions" / "s1" / "home"


def test_remote_engine_copies_binary_and_shared_files_into_volumes(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    monkeypatch.setenv("MUX_DATA_DIR", str(home.parent / "data"))
    (home / ".claude" / "commands").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"model": "x"}')
    binary = elf(home.parent / "bin" / "claude")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    text = ('[git]\ninject_config = false\n[agents.claude]\nshare = ["~/.claude/settings.json", "~/.claude/commands"]\n'
            f'binary = "{binary}"\n' + ANTHROPIC)
    remote = host(home, MUX_INSTANCE="i1")._replace(remote=True)
    spec = build_spec(config(home, text), NewOptions(name="s1", agent="claude"), remote)
    # Nothing of this machine's paths is mounted: named volumes, filled before the session.
    assert [v for v in tuple(m.text for m in spec.mounts) if v.startswith("/")] == []
    assert f"mux_i1_claude-{digest}:{AGENT_DIR}:ro" in tuple(m.text for m in spec.mounts)
    assert "mux-s1-shared:/opt/mux/shared:ro" in tuple(m.text for m in spec.mounts)
    fills = {f.name: f for f in spec.fills}
    assert fills[f"mux_i1_claude-{digest}"].files == ((binary, "claude"),)
    shared = fills["mux-s1-shared"]
    assert not shared.shared and dict(shared.labels) == {"mux.session": "s1", "mux.instance": "i1"}
    assert shared.files == ((home / ".claude" / "settings.json", ".claude/settings.json"),
                            (home / ".claude" / "commands", ".claude/commands"))
    assert spec.links == (("/home/mux/.claude/settings.json", "/opt/mux/shared/.claude/settings.json"),
                          ("/home/mux/.claude/commands", "/opt/mux/shared/.claude/commands"),
                          ("/etc/profile.d/mux-agent.sh", "/opt/mux/bin/.profile"))  # login shells
    # The agent's wrapper (every shell's `claude`) in a volume of the session's, read-only.
    data = home.parent / "data" / "instances" / "i1" / "sessions" / "s1"
    assert "mux-s1-bin:/opt/mux/bin:ro" in tuple(m.text for m in spec.mounts)
    assert fills["mux-s1-bin"].files == ((data / "bin" / "claude", "claude"), (data / "bin" / ".profile", ".profile"))
    assert not fills["mux-s1-bin"].shared
    # The digest is remembered: a second spec does not read the binary again.
    monkeypatch.setattr("hashlib.sha256", None)
    assert build_spec(config(home, text), NewOptions(name="s2", agent="claude"), remote).fills[0].name == \
        f"mux_i1_claude-{digest}"


def test_on_rootless_docker_the_agent_runs_as_its_root(home: Path) -> None:
    """That engine's uid 0 is the user running mux (mux/engine/vm.py); any other uid
    there is a subordinate one, which could not write the workdir."""
    rootless = HostFacts(uid=0, gid=0, env={"HOME": str(home)}, cwd=home.parent / "proj", now=NOW,
                         data_dir=home.parent / "data", rootless={"SecurityOptions": ["name=rootless"]})
    spec = build_spec(config(home, '[git]\ninject_config = false\n' + ANTHROPIC), NewOptions(name="s1", agent="claude"),
                      rootless)
    assert spec.user == "0:0"
