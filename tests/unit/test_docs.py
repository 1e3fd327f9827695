"""The documentation shows only what mux accepts: README.md and docs/*.md.

- every `mux ...` command line (code blocks, and inline code in the text): its
  command and subcommand exist, and every option it uses (long, and short ones) is one of that
  command's (Click's own command objects, so no process is started);
- every TOML block is a config mux's own checker accepts (mux.config.parse, as
  `mux config show` reads a file), and every key shown commented out
  (`# key = value`) is one that table accepts too;
- docs/configuration.md names every key the config accepts;
- every relative link between the pages resolves, anchors included;
- every source path the pages name (mux/..., tests/..., bench/...) exists;
- the README stays a front page (under 250 lines).

A TOML block that is not mux's config (containers.conf, say) carries the line
`<!-- not a mux config -->` just before its fence.
"""

from __future__ import annotations

import glob
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import click
import pytest

from mux import cli as mux_cli
from mux.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_CONFIG = "<!-- not a mux config -->"
README_MAX_LINES = 250
# Pages another engineer writes, linked before they land: checked like any other once present.
PENDING = {ROOT / "docs" / "layout.md"}


class Block(NamedTuple):
    page: Path
    line: int  # 1-based line of the first line of the block's text
    lang: str
    text: str
    not_config: bool


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def blocks(page: Path) -> list[Block]:
    """Fenced blocks (```lang) and indented ones (4 spaces or more, after a blank line)."""
    lines = page.read_text().split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if fence:
            start = i + 1
            end = start
            while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
                end += 1
            marker = i > 0 and lines[i - 1].strip() == NOT_CONFIG
            body = "\n".join(line[len(fence[1]):] for line in lines[start:end])
            found.append(Block(page, start + 1, fence[2], body, marker))
            i = end + 1
            continue
        if lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            start = i
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                i += 1
            found.append(Block(page, start + 1, "", "\n".join(lines[start:i]), False))
            continue
        i += 1
    return found


def prose(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of text outside code blocks."""
    code = set()
    for b in blocks(page):
        code.update(range(b.line - 1, b.line + b.text.count("\n") + 1))
    for n, line in enumerate(page.read_text().split("\n"), 1):
        if n not in code and not line.lstrip().startswith("```"):
            yield n, line


# ---- mux command lines -------------------------------------------------------------

def command_lines() -> list[tuple[str, str]]:
    """(where, command text) for each `mux ...` the pages show."""
    found = []
    for page in PAGES:
        for b in blocks(page):
            if b.lang not in ("", "sh", "bash", "console", "shell"):
                continue
            for k, line in enumerate(b.text.split("\n")):
                text = re.sub(r"(^|\s)#.*$", "", line.strip())  # a shell comment
                for part in re.split(r"&&|\|\||;|\s\|\s", text):
                    part = part.strip().removeprefix("$ ").strip()
                    if re.match(r"mux [-a-z]", part):
                        found.append((f"{rel(page)}:{b.line + k}", part))
        for n, line in prose(page):
            for span in re.findall(r"`([^`]+)`", line):
                if re.match(r"mux [-a-z]", span):
                    found.append((f"{rel(page)}:{n}", re.sub(r"(^|\s)#.*$", "", span)))
    return found


def long_options(command: click.Command) -> set[str]:
    ctx = click.Context(command, info_name=command.name)
    names = {"--help"}
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return names


def short_options(command: click.Command) -> set[str]:
    ctx = click.Context(command, info_name=command.name)
    names = {"-h"} if "-h" in ctx.help_option_names else set()
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            names.update(o for o in param.opts if re.fullmatch(r"-[A-Za-z]", o))
    return names


def takes_value(command: click.Command, option: str) -> bool:
    ctx = click.Context(command, info_name=command.name)
    for param in command.get_params(ctx):
        if isinstance(param, click.Option) and option in param.opts:
            return not param.is_flag and not param.count
    return False


def check_command(text: str) -> str | None:
    """What is wrong with command line ``text`` (``mux ...``), or None."""
    words = text.replace("\\|", "|").split()[1:]
    command: click.Command = mux_cli.cli
    path = "mux"
    while isinstance(command, click.Group):
        if not words:
            return None  # `mux config`: the group alone
        word = words.pop(0).strip("[]")
        if word.startswith("-"):
            option = word.split("=")[0]
            if option.startswith("--") and option not in long_options(command):
                return f"{path} has no option {option}"
            if "=" not in word and takes_value(command, option):
                words = words[1:]
            continue
        ctx = click.Context(command, info_name=command.name)
        alternatives = word.split("|")  # `mux proxy start|stop|status`
        for alternative in alternatives:
            if command.get_command(ctx, alternative) is None:
                return f"{path} has no command {alternative!r}"
        if len(alternatives) > 1:
            return None
        sub = command.get_command(ctx, word)
        assert sub is not None
        command, path = sub, f"{path} {word}"
    known = long_options(command)
    short = short_options(command)
    interspersed = command.context_settings.get("allow_interspersed_args", True)
    for word in words:
        bare = word.strip("[]()|,.")
        if bare == "--":
            break  # what follows goes to the session's (or agent's) command
        if not bare.startswith("-") and not interspersed:
            break  # `mux exec NAME bash -l`: after NAME, the command's own words
        for option in re.findall(r"(?:^|[\[|/])(--[A-Za-z][\w-]*)", word):
            if option not in known:
                return f"{path} has no option {option}"
        flags = re.fullmatch(r"-([A-Za-z]+)", bare)
        for letter in flags[1] if flags else "":
            if f"-{letter}" not in short:
                return f"{path} has no option -{letter}"
            if takes_value(command, f"-{letter}"):
                break  # `-p3000`: the rest is its value
    return None


COMMANDS = command_lines()


def test_the_pages_show_commands() -> None:
    assert len(COMMANDS) > 100  # the parser finds them: a regex gone wrong cannot pass quietly


@pytest.mark.parametrize("where,text", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_exists_with_its_options(where: str, text: str) -> None:
    problem = check_command(text)
    assert problem is None, f"{where}: `{text}`: {problem}"


@pytest.mark.parametrize("text,problem", [
    ("mux nwe x", "mux has no command 'nwe'"),
    ("mux new --imgae x y", "mux new has no option --imgae"),
    ("mux proxy start|halt", "mux proxy has no command 'halt'"),
    ("mux --contxt box list", "mux has no option --contxt"),
    ("mux list [--json] [--running|--stoped]", "mux list has no option --stoped"),
    ("mux logs -x NAME", "mux logs has no option -x"),
], ids=["command", "option", "alternative", "global", "bracketed", "short"])
def test_the_checker_catches(text: str, problem: str) -> None:
    assert check_command(text) == problem


def test_the_checker_accepts() -> None:
    for text in ("mux --context box new --dry-run --repo URL fix", "mux -v new -v ~/d:/d s",
                 "mux new api -- claude --dangerously-skip-permissions", "mux ls --json",
                 "mux new --proxy/--no-proxy", "mux config init --agent claude",
                 "mux exec -it my-session bash -l", "mux new -p3000 app"):
        assert check_command(text) is None, text


# ---- TOML blocks ------------------------------------------------------------------

TOMLS = [b for page in PAGES for b in blocks(page) if b.lang == "toml" and not b.not_config]
COMMENTED_KEY = re.compile(r"^#\s*([a-z_]+)\s*=\s*(.+?)(\s+#.*)?$")
COMMENTED_TABLE = re.compile(r"^#?\s*\[([a-z0-9_.-]+)\]\s*$")


def parse_config(data: dict[str, Any], text: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mux's own checker on ``data``, in a home where the host paths it names exist."""
    from mux import config

    home = tmp / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for volume in data.get("docker", {}).get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith(("~", ".", "/")):
            (tmp / Path(source.replace("~", str(home), 1))).mkdir(parents=True, exist_ok=True)
    env = {name: "x" for name in re.findall(r"\b([A-Z][A-Z0-9_]+)\b", text)}
    config.parse(data, tmp / "config.toml", env)


def commented_keys(text: str) -> Iterator[tuple[list[str], str, str]]:
    """(table path, key, value) for each `# key = value` line of a block."""
    table: list[str] = []
    for line in text.split("\n"):
        header = COMMENTED_TABLE.match(line.strip())
        if header:
            table = header[1].split(".")
            continue
        key = COMMENTED_KEY.match(line.strip())
        if key and line.lstrip().startswith("#"):
            yield table, key[1], key[2]


@pytest.mark.parametrize("block", TOMLS, ids=[f"{rel(b.page)}:{b.line}" for b in TOMLS])
def test_toml_block_is_a_valid_config(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = f"{rel(block.page)}:{block.line}"
    data = tomllib.loads(block.text)
    try:
        parse_config(data, block.text, tmp_path, monkeypatch)
    except ConfigError as exc:
        pytest.fail(f"{where}: {exc}")
    for table, key, value in commented_keys(block.text):
        one = tomllib.loads(block.text)
        here = one
        for part in table:
            here = here.setdefault(part, {})
        here[key] = tomllib.loads(f"v = {value}")["v"]
        try:
            parse_config(one, block.text, tmp_path, monkeypatch)
        except ConfigError as exc:
            pytest.fail(f"{where}: commented-out [{'.'.join(table)}] {key} = {value}: {exc}")


def test_toml_blocks_are_found() -> None:
    assert len(TOMLS) >= 6


def test_the_config_check_catches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(tomllib.loads('[docker]\nimgae = "x"\n'), "", tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config(tomllib.loads('[proxy]\nprot = 1\n'), "", tmp_path, monkeypatch)


def accepted_keys() -> dict[str, set[str]]:
    """Table -> the keys mux's config accepts there, read from its settings types."""
    from mux import config
    from mux.proxy import settings

    tables = {"docker": set(config.DockerSettings._fields) - {"limits", "rust"},
              "docker.limits": {"memory", "cpus", "memory_swap", "pids"},
              "docker.rust": set(config.RustSettings._fields),
              "git": set(config.GitSettings._fields),
              "agents.NAME": set(config.AGENT_KEYS),
              "proxy": set(settings.ProxySettings.__dataclass_fields__) - {"filters"},
              "proxy.filters": set(settings.Filters.__dataclass_fields__),
              "credentials.NAME": set(settings.CredentialRule.__dataclass_fields__) - {"name"}}
    return tables


def test_configuration_page_names_every_key() -> None:
    page = ROOT / "docs" / "configuration.md"
    shown: dict[str, set[str]] = {}
    for b in blocks(page):
        if b.lang != "toml" or b.not_config:
            continue
        table = ""
        for line in b.text.split("\n"):
            header = COMMENTED_TABLE.match(line.strip())
            if header:
                parts = header[1].split(".")
                table = ".".join(parts[:1] + ["NAME"]) if parts[0] in ("agents", "credentials") else header[1]
                continue
            key = re.match(r"^#?\s*([a-z_]+)\s*=", line.strip())
            if key:
                shown.setdefault(table, set()).add(key[1])
    missing = {table: sorted(keys - shown.get(table, set())) for table, keys in accepted_keys().items()}
    missing = {t: k for t, k in missing.items() if k}
    assert not missing, f"docs/configuration.md does not show these keys: {missing}"


# ---- links and paths ----------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for _, line in prose(page) if re.match(r"^#{1,6} ", line)}


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def links() -> list[tuple[str, Path, str]]:
    found = []
    for page in PAGES:
        for n, line in prose(page):
            for target in LINK.findall(line):
                if not re.match(r"^[a-z]+:", target):
                    found.append((f"{rel(page)}:{n}", page, target))
    return found


LINKS = links()


@pytest.mark.parametrize("where,page,target", LINKS, ids=[f"{w} {t}" for w, _, t in LINKS])
def test_link_resolves(where: str, page: Path, target: str) -> None:
    path, _, fragment = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    if dest in PENDING and not dest.exists():
        return
    assert dest.exists(), f"{where}: {target}: no file {dest}"
    if fragment:
        assert dest.suffix == ".md", f"{where}: {target}: an anchor into a file that is no page"
        assert fragment in anchors(dest), f"{where}: {target}: {rel(dest)} has no heading #{fragment}"


def test_links_are_found() -> None:
    assert len(LINKS) > 30


# Files of the checkout, and its directories (not paths inside a container, like
# /opt/mux/agents/, nor branch names, like mux/NAME/).
SOURCE = re.compile(r'(?<![\w./~"-])'
                    r"((?:mux|tests|bench|helper|scripts)/[\w./*-]*\.(?:py|c|sh|json|toml))\b"
                    r'|(?<![\w./~"-])'
                    r"((?:tests|bench|helper|mux/(?:engine|session|egress|workspace|proxy|commands|tui))"
                    r"/(?:[\w-]+/)*)(?=[`\s),;:]|$)")


def test_source_paths_exist() -> None:
    """A page naming mux/engine/clis.py, tests/integration/podman/ or bench/reach.py: it is there."""
    missing = []
    for page in PAGES:
        for n, line in enumerate(page.read_text().split("\n"), 1):
            for file, directory in SOURCE.findall(line):
                if not glob.glob(str(ROOT / (file or directory))):
                    missing.append(f"{rel(page)}:{n}: {file or directory}")
    assert not missing, "pages name files that do not exist:\n" + "\n".join(missing)


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines: move a topic to docs/"


@pytest.mark.parametrize("page", ["README.md", "docs/sessions.md"])
def test_protected_paths_are_the_ones_mux_protects(page: str) -> None:
    """The list of paths a workdir session cannot write is mux/workspace/protect.py's."""
    from mux.workspace.protect import PROTECTED

    text = (ROOT / page).read_text()
    missing = [p for p in PROTECTED if p != ".git/" and f"`{p}`" not in text]
    assert not missing, f"{page} does not list these protected paths: {missing}"
