"""Checking what the user passed as ``--repo`` and ``--branch``, without running git.

Pure string and file-system checks: ``--dry-run`` validates through here and must
not import GitPython. Everything that reaches a message goes through
:func:`redact_url` first, so an embedded credential is never echoed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mux.errors import ConfigError

ALLOWED_URLS = (
    "https://, http://, ssh://, file://, user@host:path (scp-like ssh) "
    "or the path of a local git repository"
)
BRANCH_RULES = (
    "git branch names (git check-ref-format): no spaces, control characters or any of "
    "~ ^ : ? * [ \\, no '..', '@{', '//' or leading '-', components may not start "
    "with '.' or end with '.lock', the name may not end with '/' or '.'"
)
NETWORK_SCHEMES = ("https", "http", "ssh")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# "<transport>::<address>" runs a remote helper (ext:: runs any command): never allowed.
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
_SCP = re.compile(rf"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>{_HOST}):(?P<path>.*)$")
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*@)")
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def redact_url(url: str) -> str:
    """``url`` with no secret in it: safe for messages, labels and ``origin``.

    For http(s) the whole ``user:password@`` goes, not just the password, because
    tokens are commonly passed as the user name (``https://TOKEN@host/...``). For
    ssh the user name is kept (``git@``) and only a password is dropped.
    """

    def replace(match: re.Match[str]) -> str:
        scheme = match["scheme"]
        if scheme.lower().startswith("ssh"):
            user = match["userinfo"][:-1].partition(":")[0]
            return f"{scheme}{user}@"
        return scheme

    return _CREDENTIALS.sub(replace, url)


def url_credentials(url: str) -> list[str]:
    """The secret parts embedded in ``url`` (to scrub them from git's output too)."""
    found = []
    for match in _CREDENTIALS.finditer(url):
        user, _, password = match["userinfo"][:-1].partition(":")
        found += [s for s in (user, unquote(user), password, unquote(password)) if len(s) > 2]
    return found


def is_scp_like(url: str) -> bool:
    """git's rule: a colon before any slash makes ``host:path`` an ssh address."""
    colon, slash = url.find(":"), url.find("/")
    return colon > 0 and (slash < 0 or colon < slash) and not _SCHEME.match(url)


def looks_like_git_repo(path: Path) -> bool:
    """A work tree (``.git`` dir or file) or a bare repository, judged from its files."""
    if (path / ".git").exists():
        return True
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def _bad_url(url: str, why: str) -> ConfigError:
    return ConfigError(
        f"invalid repository {redact_url(url)!r}: {why}", hint=f"use {ALLOWED_URLS}"
    )


def validate_repo_url(url: str) -> str:
    """Return ``url`` if git may be pointed at it (a local path made absolute).

    Raises :class:`ConfigError` naming the input (redacted) and what is allowed.
    """
    if not url.strip():
        raise _bad_url(url, "it is empty")
    if url.startswith("-"):
        # git would read it as an option (CVE-2017-1000117 and friends).
        raise _bad_url(url, "it starts with '-'")
    if any(ord(c) < 0x20 or c == "\x7f" for c in url) or url != url.strip():
        raise _bad_url(url, "it contains whitespace or control characters")
    scheme = _SCHEME.match(url)
    if scheme:
        return _check_scheme_url(url, scheme.group(1).lower())
    if _HELPER.match(url):
        raise _bad_url(url, "git remote helpers ('<transport>::<address>') are not allowed")
    if is_scp_like(url):
        return _check_scp_url(url)
    return _check_local_path(url)


def _check_scheme_url(url: str, scheme: str) -> str:
    if scheme == "file":
        parts = urlsplit(url)
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise _bad_url(url, "a file:// URL needs an absolute path (file:///path/to/repo)")
        _check_local_path(path, shown=url)
        return url
    if scheme not in NETWORK_SCHEMES:
        raise _bad_url(url, f"the scheme {scheme!r} is not supported")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise _bad_url(url, "the port is not a number between 0 and 65535") from None
    host = parts.hostname or ""
    if not host or host.startswith("-"):
        raise _bad_url(url, "it has no valid host name")
    if parts.path.strip("/") == "":
        raise _bad_url(url, "it names a host but no repository path")
    if parts.path.lstrip("/").startswith("-"):
        raise _bad_url(url, "the repository path starts with '-'")
    return url


def _check_scp_url(url: str) -> str:
    match = _SCP.match(url)
    if not match or match["host"].startswith("-"):
        raise _bad_url(url, "it is not a valid user@host:path address")
    path = match["path"]
    if not path.strip("/"):
        raise _bad_url(url, "it names a host but no repository path")
    if path.startswith("-"):
        raise _bad_url(url, "the repository path starts with '-'")
    return url


def _check_local_path(url: str, *, shown: str | None = None) -> str:
    path = Path(url).expanduser()
    if not path.exists():
        raise _bad_url(shown or url, f"there is no such directory ({path})")
    resolved = path.resolve()
    if not resolved.is_dir() or not looks_like_git_repo(resolved):
        raise _bad_url(shown or url, f"{resolved} is not a git repository")
    return str(resolved)


def local_path(url: str) -> str | None:
    """The directory a validated local ``url`` (a path, or file:///path) names; None
    for a network remote."""
    if url.startswith("/"):
        return url
    if url.lower().startswith("file://"):
        return unquote(urlsplit(url).path)
    return None


def validate_branch(name: str) -> str:
    """Return ``name`` if it is a valid new or existing branch name; else ConfigError."""
    why = _branch_problem(name)
    if why:
        raise ConfigError(f"invalid branch name {name!r}: {why}", hint=f"use {BRANCH_RULES}")
    return name


def _branch_problem(name: str) -> str | None:
    """What makes ``refs/heads/<name>`` invalid, after git's check_refname_format."""
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-'"
    if name == "HEAD" or name == "@":
        return f"{name!r} is reserved"
    bad = _BAD_REF_CHARS.search(name)
    if bad:
        return f"it contains {bad.group()!r}"
    for needle in ("..", "@{", "//"):
        if needle in name:
            return f"it contains {needle!r}"
    if name.startswith("/") or name.endswith("/"):
        return "it starts or ends with '/'"
    if name.endswith("."):
        return "it ends with '.'"
    for component in name.split("/"):
        if component.startswith("."):
            return f"the component {component!r} starts with '.'"
        if component.endswith(".lock"):
            return f"the component {component!r} ends with '.lock'"
    return None
