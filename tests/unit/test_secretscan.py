"""mux/session/secretscan.py: credentials in files an agent preset would share, found and
named by kind and key, never by value."""

from __future__ import annotations

import pytest

from mux.session.secretscan import entropy, find

AWS_ID, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GHP = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"


@pytest.mark.parametrize(("text", "what"), [
    pytest.param(f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n",
                 "an AWS access key ID", id="aws-ini"),
    pytest.param(f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n", "a setting named 'AWS_SECRET_ACCESS_KEY'",
                 id="aws-secret-alone"),
    pytest.param(f'{{"github": "{GHP}"}}', "a GitHub token", id="ghp"),
    pytest.param(f"GH={PAT}\n", "a GitHub token", id="github-pat"),
    pytest.param('db: "postgres://admin:hunter2secret@db.internal.test:5432/app"', "a URL with a password",
                 id="postgres-url"),
    pytest.param("remote = https://me:tok3n@git.example.test/r.git\n", "a URL with a password", id="https-url"),
    pytest.param("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5v\n-----END OPENSSH PRIVATE KEY-----",
                 "a private key block", id="openssh-key"),
    pytest.param("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "a private key block", id="rsa-key"),
    pytest.param("-----BEGIN PRIVATE KEY-----\nMIIE\n", "a private key block", id="pkcs8-key"),
    pytest.param("use sk-ant-api03-xyz", "an Anthropic API key", id="anthropic"),
    pytest.param("key sk-proj-abcdefghijklmnopqrstuvwx", "an OpenAI API key", id="openai"),
    pytest.param("xoxb-123-456-abc", "a Slack token", id="slack"),
    pytest.param("glpat-abcdefghijklmnopqrst", "a GitLab token", id="gitlab"),
    pytest.param("curl -H 'Authorization: Bearer abcdefghijklmnopqrstu'", "a bearer token", id="bearer"),
    pytest.param('{"apiKeyHelper": "pass show x"}', "a setting named 'apiKeyHelper'", id="api-key-helper"),
    pytest.param('{"env": {"ANTHROPIC_API_KEY": "x"}}', "a setting named 'ANTHROPIC_API_KEY'", id="key-env"),
    pytest.param("GITHUB_TOKEN=abc\n", "a setting named 'GITHUB_TOKEN'", id="token-variable"),
    pytest.param('{"auth": "Zx8vQ2mN7pL4kR9tW3yB6cD1"}', "a random-looking value under key 'auth'",
                 id="entropy-auth"),
    pytest.param("DB_PASS=Zx8vQ2mN7pL4kR9tW3yB6cD1\n", "a random-looking value under key 'DB_PASS'", id="entropy-pass"),
    pytest.param('{"sessionKey": "a1b2c3d4e5f6g7h8i9j0k1l2m3"}', "a random-looking value under key 'sessionKey'",
                 id="entropy-camel-case"),
    pytest.param("signing_salt: 9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c\n", "a random-looking value under key 'signing_salt'",
                 id="entropy-salt"),
])
def test_credentials_are_found_by_kind(text: str, what: str) -> None:
    found = find(text.encode())
    assert found is not None and found.what == what


@pytest.mark.parametrize("text", [
    pytest.param("Never print a password or an API key.\n", id="prose"),
    pytest.param('{"model": "claude-sonnet", "max_tokens": 4096, "maxOutputTokens": 8000}', id="token-counts"),
    pytest.param("See https://docs.example.test/path/to/page and git@github.com:me/repo.git\n", id="urls"),
    pytest.param('{"keybindings": "ctrl+k", "theme": "dark", "editor_key": "vim"}', id="low-entropy"),
    pytest.param('{"auth_file": "/home/me/.config/some/long/path/file.json"}', id="path-under-auth-key"),
    pytest.param("The task-management-system-overview is in docs.\n", id="sk-inside-a-word"),
    pytest.param('{"commit": "3f786850e387550fdab836ed7e6dc881de23001b"}', id="hash-under-plain-key"),
    pytest.param("monkey_business: The-quick-brown-fox-jumps-over-2-lazy-dogs\n", id="key-inside-a-word"),
    pytest.param('{"keybindings": "ctrl+shift+p:palette,ctrl+k ctrl+s:save"}', id="keybindings"),
    pytest.param('{"statusLine": {"type": "command", "command": "~/.claude/statusline.sh"}}', id="claude-settings"),
])
def test_ordinary_settings_pass(text: str) -> None:
    assert find(text.encode()) is None


def test_the_value_is_never_in_the_finding() -> None:
    for secret, text in ((AWS_SECRET, f"aws_secret_access_key={AWS_SECRET}"), (GHP, f"x {GHP}"),
                         ("hunter2secret", "postgres://admin:hunter2secret@db.test/x")):
        found = find(text.encode())
        assert found is not None and secret not in found.what and secret[:8] not in found.what


def test_line_is_reported() -> None:
    found = find(b"a = 1\nb = 2\n" + GHP.encode() + b"\n")
    assert found is not None and found.line == 3


def test_entropy() -> None:
    assert entropy(b"aaaaaaaa") == 0
    assert entropy(b"Zx8vQ2mN7pL4kR9tW3yB6cD1") > 4
