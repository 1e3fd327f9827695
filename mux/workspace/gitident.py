"""The git identity a session's commits carry, and what to say when there is none."""

from __future__ import annotations

FIX = ("set [git] user_name and user_email in the config (`mux config edit`), or run "
       "`git config --global user.name \"Your Name\"` and `git config --global user.email you@example.com`")


def missing(name: str | None, email: str | None) -> list[str]:
    """The git settings a commit needs that neither the config nor the host gives."""
    return [key for key, value in (("user.name", name), ("user.email", email)) if not value]


def warning(name: str | None, email: str | None) -> str | None:
    """One line for `mux new` when commits inside the session would fail."""
    lacking = missing(name, email)
    if not lacking:
        return None
    return (f"no git {' or '.join(lacking)} for this session: `git commit` inside will fail "
            f"(\"Author identity unknown\"); {FIX}")
