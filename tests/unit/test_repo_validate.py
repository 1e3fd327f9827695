"""--repo and --branch checks, redaction and the dry-run commands: pure, no git run."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.errors import ConfigError
from mux.workspace.repo import cache_path, clone_commands, redact_url, validate_branch, validate_repo_url


@pytest.fixture
def work_tree(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    (repo / ".git").mkdir(parents=True)
    return repo


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    repo = tmp_path / "bare.git"
    for d in ("objects", "refs/heads"):
        (repo / d).mkdir(parents=True)
    (repo / "HEAD").write_text("ref: refs/heads/main\n")
    return repo


GOOD_URLS = [
    pytest.param("https://github.com/org/repo.git", id="https"),
    pytest.param("https://github.com/org/repo", id="https-no-suffix"),
    pytest.param("http://127.0.0.1:8080/repo.git", id="http-port"),
    pytest.param("https://user:secret@example.com/org/repo.git", id="https-credentials"),
    pytest.param("ssh://git@example.com/org/repo.git", id="ssh"),
    pytest.param("ssh://git@example.com:2222/org/repo.git", id="ssh-port"),
    pytest.param("ssh://[::1]/repo.git", id="ssh-ipv6"),
    pytest.param("git@github.com:org/repo.git", id="scp-like"),
    pytest.param("example.com:repo.git", id="scp-like-no-user"),
    pytest.param("HTTPS://github.com/org/repo", id="scheme-case"),
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_network_urls_are_accepted_unchanged(url: str) -> None:
    assert validate_repo_url(url) == url


BAD_URLS = [
    pytest.param("", "empty", id="empty"),
    pytest.param("   ", "empty", id="blank"),
    pytest.param("-oProxyCommand=touch /tmp/x", "starts with '-'", id="option"),
    pytest.param("--upload-pack=touch x", "starts with '-'", id="long-option"),
    pytest.param("ftp://example.com/repo.git", "'ftp' is not supported", id="ftp"),
    pytest.param("git://example.com/repo.git", "'git' is not supported", id="git-protocol"),
    pytest.param("ext::sh -c touch% /tmp/pwned", "remote helpers", id="ext-helper"),
    pytest.param("fd::17", "remote helpers", id="fd-helper"),
    pytest.param("https://", "no valid host", id="no-host"),
    pytest.param("https://github.com", "no repository path", id="no-path"),
    pytest.param("https://github.com/", "no repository path", id="root-path"),
    pytest.param("https://example.com:99999/repo", "port", id="bad-port"),
    pytest.param("https://example.com:abc/repo", "port", id="non-numeric-port"),
    pytest.param("ssh://-oProxyCommand=x/repo", "host", id="ssh-dash-host"),
    pytest.param("ssh://example.com/-repo", "starts with '-'", id="ssh-dash-path"),
    pytest.param("git@example.com:-x", "starts with '-'", id="scp-dash-path"),
    pytest.param("git@example.com:", "no repository path", id="scp-no-path"),
    pytest.param("git@exa mple.com:repo", "user@host:path", id="space-in-host"),
    pytest.param("https://example.com/repo\n", "whitespace", id="newline"),
    pytest.param("https://example.com/re\x00po", "control", id="nul"),
    pytest.param("git@ex!ample.com:repo", "user@host:path", id="scp-bad-host"),
    pytest.param("file://relative/repo", "absolute path", id="file-relative"),
    pytest.param("/nonexistent/mux/repo", "no such directory", id="missing-path"),
    pytest.param("file:///nonexistent/mux/repo", "no such directory", id="missing-file-url"),
]


@pytest.mark.parametrize(("url", "why"), BAD_URLS)
def test_bad_urls_name_the_input_and_what_is_allowed(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_repo_url(url)
    assert why in err.value.message
    assert repr(url) in err.value.message
    assert "https://" in (err.value.hint or "") and "local git repository" in (err.value.hint or "")
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://alice:hunter2secret@example.com/repo\n", id="user-password"),
        pytest.param("https://hunter2secret@example.com/-repo", id="token-as-user"),
        pytest.param("ftp://alice:hunter2secret@example.com/repo", id="bad-scheme"),
        pytest.param("https://alice:hunter2secret@example.com", id="no-path"),
        pytest.param("https://alice:hunter2secret@example.com:99999/r", id="bad-port"),
    ],
)
def test_bad_url_messages_never_echo_a_credential(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_repo_url(url)
    assert "hunter2secret" not in err.value.message + (err.value.hint or "")
    assert "example.com" in err.value.message


def test_local_work_tree_is_made_absolute(work_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work_tree.parent)
    assert validate_repo_url("project") == str(work_tree.resolve())
    assert validate_repo_url("./project/") == str(work_tree.resolve())


def test_local_bare_repo_and_file_url(bare: Path) -> None:
    assert validate_repo_url(str(bare)) == str(bare.resolve())
    assert validate_repo_url(f"file://{bare}") == f"file://{bare}"


def test_local_path_with_colon_after_slash_is_a_path(tmp_path: Path) -> None:
    repo = tmp_path / "a:b"
    (repo / ".git").mkdir(parents=True)
    assert validate_repo_url(f"{tmp_path}/a:b") == str(repo.resolve())


@pytest.mark.parametrize("kind", ["plain-dir", "file"])
def test_local_path_that_is_not_a_repository(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "thing"
    target.mkdir() if kind == "plain-dir" else target.write_text("x")
    with pytest.raises(ConfigError, match="is not a git repository"):
        validate_repo_url(str(target))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("https://u:p4ss@h.example/r.git", "https://h.example/r.git", id="https-user-pass"),
        pytest.param("https://t0ken@h.example/r.git", "https://h.example/r.git", id="https-token"),
        pytest.param("http://u:p%40ss@h.example:81/r", "http://h.example:81/r", id="http-escaped"),
        pytest.param("ssh://git:pw@h.example/r.git", "ssh://git@h.example/r.git", id="ssh-password"),
        pytest.param("ssh://git@h.example/r.git", "ssh://git@h.example/r.git", id="ssh-user-kept"),
        pytest.param("git@h.example:o/r.git", "git@h.example:o/r.git", id="scp-untouched"),
        pytest.param("https://h.example/a@b", "https://h.example/a@b", id="at-in-path"),
        pytest.param(
            "see https://u:p@h/r and https://x@h/s", "see https://h/r and https://h/s", id="in-text"
        ),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


GOOD_BRANCHES = [
    pytest.param("main", id="simple"),
    pytest.param("feature/login", id="slash"),
    pytest.param("agent/2024-01-01_fix.bug", id="punctuation"),
    pytest.param("v1.2", id="dot-inside"),
    pytest.param("a@b", id="at-sign"),
    pytest.param("x.lockx", id="lock-not-suffix"),
    pytest.param("ünïcødé", id="non-ascii"),
    pytest.param("-".join(["a"] * 3), id="dash-inside"),
]


@pytest.mark.parametrize("name", GOOD_BRANCHES)
def test_good_branch_names(name: str) -> None:
    assert validate_branch(name) == name


BAD_BRANCHES = [
    pytest.param("", "empty", id="empty"),
    pytest.param("-b", "starts with '-'", id="leading-dash"),
    pytest.param("HEAD", "reserved", id="HEAD"),
    pytest.param("@", "reserved", id="lone-at"),
    pytest.param("a b", "' '", id="space"),
    pytest.param("a\tb", "'\\t'", id="tab"),
    pytest.param("a\x7fb", "'\\x7f'", id="del"),
    pytest.param("a~1", "'~'", id="tilde"),
    pytest.param("a^", "'^'", id="caret"),
    pytest.param("a:b", "':'", id="colon"),
    pytest.param("a?", "'?'", id="question"),
    pytest.param("a*", "'*'", id="star"),
    pytest.param("a[b", "'['", id="bracket"),
    pytest.param("a\\b", "'\\\\'", id="backslash"),
    pytest.param("a..b", "'..'", id="double-dot"),
    pytest.param("a@{b", "'@{'", id="at-brace"),
    pytest.param("a//b", "'//'", id="double-slash"),
    pytest.param("/a", "starts or ends with '/'", id="leading-slash"),
    pytest.param("a/", "starts or ends with '/'", id="trailing-slash"),
    pytest.param("a.", "ends with '.'", id="trailing-dot"),
    pytest.param(".a", "starts with '.'", id="leading-dot"),
    pytest.param("a/.b", "starts with '.'", id="component-dot"),
    pytest.param("a.lock", "ends with '.lock'", id="lock"),
    pytest.param("a.lock/b", "ends with '.lock'", id="component-lock"),
]


@pytest.mark.parametrize(("name", "why"), BAD_BRANCHES)
def test_bad_branch_names(name: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_branch(name)
    assert why in err.value.message
    assert repr(name) in err.value.message
    assert "check-ref-format" in (err.value.hint or "")


# The same tables, checked against git itself, live in tests/integration/test_repo.py.


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_cache_path_is_per_remote_and_ignores_credentials(data_dir: Path) -> None:
    plain = cache_path("https://example.com/org/repo.git")
    assert plain.parent == data_dir / "cache" / "git" and plain.suffix == ".git"
    assert cache_path("https://u:secret@example.com/org/repo.git") == plain
    assert cache_path("https://example.com/org/other.git") != plain
    assert "secret" not in str(cache_path("https://u:secret@example.com/org/repo.git"))


def test_clone_commands_for_a_new_remote(data_dir: Path) -> None:
    url = "https://u:secret@example.com/org/repo.git"
    mirror = str(cache_path(url))
    assert clone_commands(url, Path("/s/repo"), "agent/fix") == [
        ["git", "init", "--quiet", "--bare", mirror],
        ["git", "-C", mirror, "config", "gc.auto", "0"],
        ["git", "-C", mirror, "fetch", "--prune", "--", "https://example.com/org/repo.git",
         "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
        ["git", "clone", "--reference", mirror, "--dissociate", "--",
         "https://example.com/org/repo.git", "/s/repo"],
        ["git", "-C", "/s/repo", "switch", "--quiet", "--create", "agent/fix"],
    ]


def test_clone_commands_use_a_cached_branch(data_dir: Path) -> None:
    url = "git@example.com:org/repo.git"
    mirror = cache_path(url)
    for d in ("objects", "refs/heads/agent"):
        (mirror / d).mkdir(parents=True)
    (mirror / "HEAD").write_text("ref: refs/heads/main\n")
    (mirror / "config").write_text("[core]\n\tbare = true\n")
    (mirror / "refs/heads/agent/fix").write_text("0" * 40 + "\n")
    (mirror / "packed-refs").write_text(f"{'1' * 40} refs/heads/packed\n")
    fetch = ["git", "-C", str(mirror), "fetch", "--prune", "--", url,
             "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    for branch in ("agent/fix", "packed"):
        assert clone_commands(url, Path("/s/repo"), branch) == [
            fetch,
            ["git", "clone", "--reference", str(mirror), "--dissociate", "--branch", branch,
             "--", url, "/s/repo"],
        ]
    assert clone_commands(url, Path("/s/repo"), None)[-1] == [
        "git", "clone", "--reference", str(mirror), "--dissociate", "--", url, "/s/repo"]


def test_clone_commands_for_a_local_path_have_no_cache(bare: Path, data_dir: Path) -> None:
    (bare / "refs/heads/main").write_text("0" * 40 + "\n")
    assert clone_commands(str(bare), Path("/s/r"), "main") == [
        ["git", "clone", "--no-local", "--branch", "main", "--", str(bare.resolve()), "/s/r"],
    ]
    assert clone_commands(str(bare), Path("/s/r"), "new") == [
        ["git", "clone", "--no-local", "--", str(bare.resolve()), "/s/r"],
        ["git", "-C", "/s/r", "switch", "--quiet", "--create", "new"],
    ]
    assert not (data_dir / "cache").exists()


@pytest.mark.parametrize(
    ("url", "branch"),
    [pytest.param("ftp://x/y", None, id="bad-url"), pytest.param("https://x/y", "a..b", id="bad-branch")],
)
def test_clone_commands_validate(url: str, branch: str | None, data_dir: Path) -> None:
    with pytest.raises(ConfigError):
        clone_commands(url, Path("/s/r"), branch)
