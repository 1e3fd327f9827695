"""Does a file an agent preset would share into a session hold a credential?

The shared-file check (mux/session/agents.py) refuses a file that holds one: keys stay
with the proxy, outside the container. What counts: a known token shape (cloud,
GitHub, Slack, model providers), a private key block, a URL with a password in
it, a setting that holds or fetches a key, and a long high-entropy value under a
key named like a secret. :func:`find` says *what* and *where* (the kind and the
key, or the line), never the value: the message reaches terminals and logs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import NamedTuple

# (what it is, pattern). Shapes first: they name the kind exactly.
SHAPES: tuple[tuple[str, re.Pattern[bytes]], ...] = tuple((what, re.compile(rx)) for what, rx in (
    ("a private key block", rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ("an AWS access key ID", rb"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ("a GitHub token", rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{40,})"),
    ("a GitLab token", rb"glpat-[A-Za-z0-9_-]{20,}"),
    ("a Slack token", rb"xox[abposr]-[A-Za-z0-9-]+"),
    ("an Anthropic API key", rb"sk-ant-[A-Za-z0-9_-]+"),
    ("an OpenAI API key", rb"(?<![A-Za-z0-9])sk-(?:proj-)?[A-Za-z0-9_-]{20,}"),
    ("a Google API key", rb"AIza[0-9A-Za-z_-]{20,}"),
    ("a Stripe key", rb"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("a bearer token", rb"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}"),
    ("a URL with a password", rb"[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@\"'<>]+:[^\s/@\"'<>]+@[^\s/\"'<>]"),
))
# A setting that holds or fetches one ("apiKeyHelper": ..., API_KEY=..., password: ...);
# prose that merely mentions passwords has no ':' or '=' after the word.
# The word ends the key: "max_tokens" is a setting, "GITHUB_TOKEN" a secret.
SECRET_KEY = re.compile(
    rb"(?P<key>[A-Za-z0-9_.-]*(?:api[_-]?key|apikeyhelper|auth[_-]?token|access[_-]?token|refresh[_-]?token|"
    rb"password|passwd|secret|token|credentials?|private[_-]?key|access[_-]?key|secret[_-]?key))"
    rb"[\"']?\s*[:=]", re.IGNORECASE)
# Any key = value, for the high-entropy check under keys named like secrets (auth, key, pwd...).
# The value: token characters only, long, letters and digits mixed (a keybinding or
# a sentence under a "key" is not one).
ASSIGNMENT = re.compile(
    rb"(?P<key>[A-Za-z_][A-Za-z0-9_.-]{0,63})[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9+/=_.-]{20,})(?![^\s\"',;}])")
SECRETISH = {b"key", b"apikey", b"secret", b"token", b"pass", b"password", b"passwd", b"pwd", b"auth", b"cred",
             b"creds", b"credential", b"credentials", b"signature", b"salt", b"cookie", b"session", b"sessionid"}
WORDS = re.compile(rb"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")  # snake_case, kebab-case, camelCase, SHOUTING
ENTROPY = 3.5  # bits per character; English words and paths stay below, random keys above ~4.5


class Finding(NamedTuple):
    what: str  # "an AWS access key ID", "a value under key 'aws_secret'"
    line: int


def entropy(value: bytes) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _line(data: bytes, at: int) -> int:
    return data.count(b"\n", 0, at) + 1


def _key(m: re.Match[bytes]) -> str:
    return m.group("key").decode("ascii", errors="replace")[:64]


def find(data: bytes) -> Finding | None:
    """The first credential in ``data``, or None."""
    for what, rx in SHAPES:
        m = rx.search(data)
        if m:
            return Finding(what, _line(data, m.start()))
    m = SECRET_KEY.search(data)
    if m:
        return Finding(f"a setting named {_key(m)!r}", _line(data, m.start()))
    for m in ASSIGNMENT.finditer(data):
        value = m.group("value")
        words = {w.lower() for w in WORDS.findall(m.group("key"))}
        if (words & SECRETISH and entropy(value) >= ENTROPY and not value.startswith((b"/", b"."))
                and re.search(rb"[0-9]", value) and re.search(rb"[A-Za-z]", value)):
            return Finding(f"a random-looking value under key {_key(m)!r}", _line(data, m.start()))
    return None
