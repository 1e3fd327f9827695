"""mux/engine/podman_tty.py: the cut that makes podman 4.3 read each detach key alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mux.engine import podman_tty


def test_each_detach_key_is_a_piece_of_its_own() -> None:
    assert podman_tty.pieces(b"\x10\x11") == [b"\x10", b"\x11"]
    assert podman_tty.pieces(b"ls\r\x10x\x11") == [b"ls\r", b"\x10", b"x", b"\x11"]
    assert podman_tty.pieces(b"plain text") == [b"plain text"]
    assert podman_tty.pieces(b"") == []


@given(st.binary(max_size=64))
def test_the_pieces_are_the_bytes(data: bytes) -> None:
    cut = podman_tty.pieces(data)
    assert b"".join(cut) == data
    assert all(len(p) == 1 or not set(p) & set(podman_tty.DETACH_KEYS) for p in cut)


def test_only_podman_attach_is_wanted() -> None:
    assert not podman_tty.wanted(["docker", "attach", "x"])
    assert not podman_tty.wanted(["podman", "exec", "x"])


def test_words_follow_the_active_cli(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mux.engine import clis

    monkeypatch.setattr(clis, "ACTIVE", "docker")
    assert clis.words("`docker rm x` removes it") == "`docker rm x` removes it"
    monkeypatch.setattr(clis, "ACTIVE", "podman")
    assert clis.words("`docker rm x` removes it") == "`podman rm x` removes it"
