"""Host integrity as the command line shows it: the printed commands and warnings."""

from __future__ import annotations

from pathlib import Path

from tests.cli.muxcli import Home, run


def sccache_binary(home: Home) -> Path:
    binary = home.root / "bin/sccache"
    binary.parent.mkdir()
    binary.write_bytes(b"\x7fELF" + b"\0" * 60)
    binary.chmod(0o755)
    return binary


def test_a_global_cache_is_warned_as_shared_by_every_session(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config(home.config.read_text() + f'[docker.rust]\nsccache = true\nbinary = "{sccache_binary(home)}"\n'
                      'cache_scope = "global"\n')
    result = run("new", "--dry-run", "s1")
    assert result.code == 0, result.err
    assert result.err.startswith('mux: warning: [docker.rust] cache_scope = "global": every session shares one')
    assert "/global:/mux/sccache" in result.out


def test_the_repo_scope_is_quiet_and_printed(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config(home.config.read_text() + f'[docker.rust]\nsccache = true\nbinary = "{sccache_binary(home)}"\n')
    result = run("new", "--dry-run", "s1")
    assert result.code == 0 and result.err == ""
    assert "/.cache/mux/sccache/repo-" in result.out or "/mux/sccache/repo-" in result.out


def test_the_dry_run_of_a_uid_0_session_shows_the_hardening(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--dry-run", "s1")
    assert result.code == 0, result.err
    line = result.out.splitlines()[-1]
    assert ("--pids-limit 4096 --security-opt no-new-privileges --cap-drop NET_RAW --cap-drop MKNOD "
            "--cap-drop SETFCAP --cap-drop AUDIT_WRITE --cap-drop SETPCAP") in line
    assert not home.data.exists()  # nothing made: not even mux's uid-0 note
