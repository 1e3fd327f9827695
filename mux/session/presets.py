"""The agent presets mux knows (`mux new --agent NAME`): data, and how each finds its host binary.

mux/session/agents.py applies a preset (changed by the user's ``[agents.NAME]`` table) to a
session's spec; here is only what each agent is.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mux import validate

PLACEHOLDER = "mux-placeholder-the-proxy-injects-the-real-key"


@dataclass(frozen=True)
class Preset:
    name: str
    command: str
    api_host: str
    # header (lower case) -> the variables that get the placeholder when the rule sets it
    key_env: Mapping[str, tuple[str, ...]]
    base_url_env: str | None = None  # the variable that moves its API elsewhere
    base_url_config: str | None = None  # or the `-c KEY=URL` setting that does (codex)
    args: tuple[str, ...] = ()
    headless_args: tuple[str, ...] = ()  # the prompt follows
    prompt_args: tuple[str, ...] = ()  # first message of an interactive session; the prompt follows
    env: tuple[tuple[str, str], ...] = ()
    share: tuple[str, ...] = ()
    # Files written into a new session HOME (relative path, text), e.g. "onboarding done".
    seed: tuple[tuple[str, str], ...] = ()
    find_binary: Callable[[], Path | None] | None = None  # None: a script, never mounted
    install_hint: str = ""
    # For `mux config init --agent` and the "no rule" error.
    rule: tuple[str, str, str | None, str] = ("", "Authorization", "bearer", "")  # name, header, auth_type, ${VAR}


def _native_on_path(program: str, packaged: Callable[[Path, str], list[Path]]) -> Path | None:
    """``program`` on PATH when it is an executable; when it is npm's node script (or
    stub), the native binary its npm package ships: ``packaged(command, arch)``."""
    found = shutil.which(program)
    if not found:
        return None
    command = Path(found).resolve()
    if not_executable(command) is None:
        return command
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine())
    if arch is None:
        return None
    return next((c for c in packaged(command, arch) if not_executable(c) is None), None)


def _claude_packaged(command: Path, arch: str) -> list[Path]:
    # .../@anthropic-ai/claude-code/bin/claude.exe, a stub when npm ran no postinstall
    root = command.parent.parent
    return [base / f"claude-code-linux-{arch}{libc}" / "claude"
            for base in (root.parent, root / "node_modules" / "@anthropic-ai") for libc in ("", "-musl")]


def _codex_packaged(command: Path, arch: str) -> list[Path]:
    # .../@openai/codex/bin/codex.js; the static musl binary is in @openai/codex-linux-ARCH
    root = command.parent.parent
    triple = {"x64": "x86_64", "arm64": "aarch64"}[arch] + "-unknown-linux-musl"
    return [vendor / triple / "bin" / "codex"
            for vendor in (root / "node_modules" / "@openai" / f"codex-linux-{arch}" / "vendor",
                           root.parent / f"codex-linux-{arch}" / "vendor", root / "vendor")]


def _claude_binary() -> Path | None:
    return _native_on_path("claude", _claude_packaged)


def _codex_binary() -> Path | None:
    return _native_on_path("codex", _codex_packaged)


CLAUDE_JSON = json.dumps({
    "hasCompletedOnboarding": True,
    # The one-time "use this API key?" question, answered for mux's placeholder.
    "customApiKeyResponses": {"approved": [PLACEHOLDER[-20:]], "rejected": []},
}, indent=2) + "\n"

PRESETS: dict[str, Preset] = {
    "claude": Preset(
        name="claude", command="claude", api_host="api.anthropic.com",
        key_env={"x-api-key": ("ANTHROPIC_API_KEY",),
                 # an OAuth token from `claude setup-token`
                 "authorization": ("CLAUDE_CODE_OAUTH_TOKEN",)},
        base_url_env="ANTHROPIC_BASE_URL",
        # "--": a prompt that starts with "-" is still the prompt, not an option
        headless_args=("-p", "--"), prompt_args=("--",),
        env=(("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"), ("DISABLE_AUTOUPDATER", "1"),
             ("DISABLE_TELEMETRY", "1"), ("DISABLE_ERROR_REPORTING", "1")),
        seed=((".claude.json", CLAUDE_JSON),),
        find_binary=_claude_binary,
        install_hint="install Claude Code on the host (`npm install -g @anthropic-ai/claude-code`, "
                     "whose `claude` is a native binary), set [agents.claude] binary, or use an image "
                     "that has it",
        rule=("anthropic", "x-api-key", None, "${ANTHROPIC_API_KEY}"),
    ),
    "codex": Preset(
        name="codex", command="codex", api_host="api.openai.com",
        key_env={"authorization": ("OPENAI_API_KEY", "CODEX_API_KEY")},
        base_url_config="openai_base_url",
        args=("-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false"),
        headless_args=("exec", "--skip-git-repo-check", "--"), prompt_args=("--",),
        find_binary=_codex_binary,
        install_hint="install Codex on the host (`npm install -g @openai/codex` ships a static binary "
                     "mux can mount), set [agents.codex] binary, or use an image that has it",
        rule=("openai", "Authorization", "bearer", "${OPENAI_API_KEY}"),
    ),
    "gemini": Preset(
        name="gemini", command="gemini", api_host="generativelanguage.googleapis.com",
        key_env={"x-goog-api-key": ("GEMINI_API_KEY",)},
        base_url_env="GOOGLE_GEMINI_BASE_URL",
        headless_args=("-p",), prompt_args=("-i",),
        env=(("GEMINI_TELEMETRY_ENABLED", "false"),),
        seed=((".gemini/settings.json", json.dumps({
            "privacy": {"usageStatisticsEnabled": False},
            "security": {"auth": {"selectedType": "gemini-api-key"}},
        }, indent=2) + "\n"),),
        install_hint="gemini is a node script, which mux cannot mount from the host: use an image "
                     "with it installed (`RUN npm install -g @google/gemini-cli`), e.g. --image",
        rule=("gemini", "x-goog-api-key", None, "${GEMINI_API_KEY}"),
    ),
}


def not_executable(path: Path) -> str | None:
    """Why ``path`` cannot be mounted as the agent program, or None."""
    return validate.not_mountable_program(path, "is a script, not a self-contained executable")
