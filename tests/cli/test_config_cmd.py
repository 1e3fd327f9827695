"""`mux config show|init|path|edit` with isolated config locations."""

from __future__ import annotations

import json

import pytest

from mux import config as C
from mux.configfile import loads as toml_loads
from tests.cli.muxcli import Home, run


@pytest.fixture
def bare(home: Home, monkeypatch: pytest.MonkeyPatch) -> Home:
    """No MUX_CONFIG: the user config under $XDG_CONFIG_HOME is what mux reads."""
    monkeypatch.delenv("MUX_CONFIG")
    return home


def user_config(home: Home):  # type: ignore[no-untyped-def]
    return home.root / "xdg" / "mux" / "config.toml"


def test_show_defaults(bare: Home) -> None:
    result = run("config", "show")
    assert result.code == 0
    assert result.out.startswith("# no config file: built-in defaults\n\n[docker]\nimage = \"ubuntu:22.04\"\n")


def test_show_json_and_toml_agree(home: Home) -> None:
    home.write_config('[docker]\nimage = "alpine:3"\nenv = ["A=1"]\n[docker.limits]\nmemory = "2g"\n'
                      '[git]\nuser_name = "Zoë 😀"\n[credentials."github.com"]\ndomains = ["github.com"]\n'
                      'value = "literal-secret"\n')
    as_json = json.loads(run("config", "show", "--json").out)
    assert as_json["source"] == str(home.config)
    assert as_json["docker"]["image"] == "alpine:3"
    assert as_json["docker"]["limits"] == {"memory": "2g", "cpus": None, "memory_swap": None, "pids": None}
    assert as_json["credentials"]["github.com"]["value"] == "(hidden)"
    text = run("config", "show").out
    assert text.startswith(f"# from {home.config}\n")
    parsed = toml_loads(text)
    del as_json["source"]

    def drop_none(v):  # type: ignore[no-untyped-def]
        return {k: drop_none(x) for k, x in v.items() if x is not None} if isinstance(v, dict) else v

    assert parsed == drop_none(as_json)


def test_show_bad_config(home: Home) -> None:
    home.write_config("[docker]\nimage = \n")
    result = run("config", "show")
    assert result.code == 2
    assert result.err.startswith(f"mux: error: {home.config}: not valid TOML")


def test_init_writes_a_loadable_template(bare: Home) -> None:
    result = run("config", "init")
    assert result.code == 0, result.err
    path = user_config(bare)
    assert result.out == f"Wrote {path}\n"
    assert C.load(path, env={}) == C.Config(source=path)


def test_init_refuses_to_overwrite(home: Home) -> None:
    result = run("config", "init")
    assert result.code == 2
    assert result.err.splitlines() == [f"mux: error: {home.config} already exists",
                                       "mux: hint: use --force to replace it (the old file is kept as .bak)"]
    assert "busybox" in home.config.read_text()


def test_init_force_keeps_the_old_file_as_bak(home: Home) -> None:
    edited = home.config.read_text()
    result = run("config", "init", "--force")
    assert result.code == 0, result.err
    assert result.out == f"Wrote {home.config} (the old one is {home.config}.bak)\n"
    assert "[docker.limits]" in home.config.read_text()
    assert (home.root / "config.toml.bak").read_text() == edited


@pytest.mark.parametrize("force", [pytest.param(False, id="new"), pytest.param(True, id="force")])
def test_init_dry_run_prints_what_writes_the_same_file(home: Home, force: bool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    target = tmp_path / "made" / "config.toml"
    if force:
        target.parent.mkdir()
        target.write_text("# mine\n")
    result = run("--config", str(target), "config", "init", "--dry-run", *(["--force"] if force else []))
    assert result.code == 0, result.err
    assert target.exists() is force and not (tmp_path / "made" / "config.toml.bak").exists()
    lines = result.out.splitlines()
    assert lines[0] == f"mkdir -p {target.parent}"
    assert len(lines) == (3 if force else 2)
    for line in lines:  # what was printed, run by a shell, does the job
        subprocess.run(["sh", "-c", line], check=True)
    assert "[docker.limits]" in target.read_text()
    if force:
        assert (tmp_path / "made" / "config.toml.bak").read_text() == "# mine\n"
    real = tmp_path / "real.toml"
    assert run("--config", str(real), "config", "init").code == 0
    assert real.read_text() == target.read_text()


def test_init_with_config_flag(home: Home) -> None:
    target = home.root / "sub" / "mine.toml"
    assert run("--config", str(target), "config", "init").code == 0
    assert target.is_file()


def test_path_from_env(home: Home) -> None:
    assert run("config", "path").out == f"{home.config}\n"


def test_path_when_no_file(bare: Home) -> None:
    result = run("config", "path")
    assert (result.code, result.out) == (0, f"{user_config(bare)}\n")
    assert "does not exist" in result.err


def test_path_finds_user_config(bare: Home) -> None:
    path = user_config(bare)
    path.parent.mkdir(parents=True)
    path.write_text("[docker]\n")
    assert run("config", "path").out == f"{path}\n"


def test_edit_runs_the_editor(home: Home, monkeypatch: pytest.MonkeyPatch, execs) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "code --wait")
    assert run("config", "edit").code == 0
    assert execs == [["code", "--wait", str(home.config)]]


def test_version_and_help(home: Home) -> None:
    from mux import __version__

    assert run("--version").out == f"mux {__version__}\n"
    result = run("--help")
    assert result.code == 0 and "Exit codes" in result.out


def test_unknown_command_is_usage_error(home: Home) -> None:
    result = run("frobnicate")
    assert result.code == 2
    assert "No such command 'frobnicate'" in result.err


def test_path_names_the_file_init_would_create(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    target = home.root / "new.toml"
    monkeypatch.setenv("MUX_CONFIG", str(target))
    result = run("config", "path")
    assert (result.code, result.out) == (0, f"{target}\n")


def test_init_agent_writes_the_credential_rule(bare: Home) -> None:
    assert run("config", "init", "--agent", "claude").code == 0
    path = user_config(bare)
    rules = C.load(path, env={}).raw_credentials
    assert rules == {"anthropic": {"domains": ["api.anthropic.com"], "header": "x-api-key",
                                   "value": "${ANTHROPIC_API_KEY}"}}
    # An existing file gets only the rules it lacks; a second run changes nothing.
    result = run("config", "init", "--agent", "claude", "--agent", "codex")
    assert (result.code, result.out) == (0, f"Added the credential rule(s) to {path}\n")
    assert set(C.load(path, env={}).raw_credentials) == {"anthropic", "openai"}
    before = path.read_text()
    assert "already has a credential rule" in run("config", "init", "--agent", "codex").out
    assert path.read_text() == before
    assert run("config", "init", "--agent", "nope").code == 2


@pytest.mark.parametrize(("line", "needle"), [
    ('git_push = "sometimes"', 'git_push = \'sometimes\' is not valid; use "session", "any" or "none"'),
    ('read_only = "yes"', "read_only = 'yes' is not valid; use true or false"),
    ('push_prefix = "shared"', "push_prefix = 'shared' is not valid; use a branch path with {session} in it"),
])
def test_show_refuses_bad_git_policy_keys(home: Home, line: str, needle: str) -> None:
    home.write_config(f'[credentials.github]\ndomains = ["github.com"]\nvalue = "x"\n{line}\n')
    result = run("config", "show")
    assert result.code == 2
    assert needle in result.err and "[credentials.github]" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_show_has_the_git_policy_keys(home: Home) -> None:
    home.write_config('[credentials.github]\ndomains = ["github.com"]\nvalue = "x"\ngit_push = "none"\n'
                      "read_only = true\n")
    shown = json.loads(run("config", "show", "--json").out)["credentials"]["github"]
    assert (shown["git_push"], shown["read_only"]) == ("none", True)
