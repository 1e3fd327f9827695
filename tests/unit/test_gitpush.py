"""git_push / read_only: the settings, the pkt-line reader, the decision and the answer git is given."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mux.errors import ConfigError
from mux.proxy import gitpush
from mux.proxy.gitpush import Command, CommandReader, NotAPush, PushGate, decide, pkt, refusal_result
from mux.proxy.settings import CredentialRule, parse_credentials, push_ref_prefix

ZERO = "0" * 40
A, B = "a" * 40, "b" * 40
RULE = CredentialRule("github", ("github.com",), value="x")


def body(*commands: tuple[str, str, str], caps: str = "report-status side-band-64k", pack: bytes = b"PACK",
         shallow: tuple[str, ...] = (), options: tuple[str, ...] = ()) -> bytes:
    out = b"".join(pkt(f"shallow {s}".encode()) for s in shallow)
    for i, (old, new, ref) in enumerate(commands):
        out += pkt(f"{old} {new} {ref}".encode() + (b"\0" + caps.encode() if i == 0 else b"") + b"\n")
    out += b"0000" + b"".join(pkt(o.encode() + b"\n") for o in options) + (b"0000" if options else b"")
    return out + pack


def gate(data: bytes, rule: CredentialRule = RULE, session: str = "fix-1", encoding: str = "",
         step: int = 0) -> PushGate:
    g = PushGate(rule, session, encoding)
    chunks = [data[i:i + step] for i in range(0, len(data), step)] if step else [data]
    for chunk in chunks:
        if g.feed(chunk):
            break
    else:
        g.finish()
    return g


def test_settings_defaults_and_values() -> None:
    rules = parse_credentials({"credentials": {
        "a": {"domains": ["a.test"], "value": "x"},
        "b": {"domains": ["b.test"], "value": "x", "git_push": "none", "read_only": True},
        "c": {"domains": ["c.test"], "value": "x", "git_push": "any", "push_prefix": "alice/{session}"},
    }}, "cfg")
    assert [(r.git_push, r.push_prefix, r.read_only) for r in rules] == [
        ("session", "mux/{session}", False), ("none", "mux/{session}", True), ("any", "alice/{session}", False)]
    a, b, c = rules
    assert push_ref_prefix(a, "s1") == "refs/heads/mux/s1"
    assert push_ref_prefix(b, "s1") is None and push_ref_prefix(c, "s1") == "*"
    custom = CredentialRule("d", ("d.test",), value="x", push_prefix="team/alice/{session}")
    assert push_ref_prefix(custom, "s1") == "refs/heads/team/alice/s1"


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("git_push", "sometimes", 'git_push = \'sometimes\' is not valid; use "session", "any" or "none"'),
    ("git_push", True, "git_push = True is not valid"),
    ("read_only", "yes", "read_only = 'yes' is not valid; use true or false"),
    ("push_prefix", "mux", "push_prefix = 'mux' is not valid"),
    ("push_prefix", "mux/{session}/{session}", "push_prefix"),
    ("push_prefix", "../{session}", "push_prefix"),
    ("push_prefix", "mux/{session}/", "push_prefix"),
    ("push_prefix", "mux/{session}.lock", "push_prefix"),
    ("push_prefix", "a b/{session}", "push_prefix"),
])
def test_bad_git_settings_name_key_and_rule(key: str, value: object, needle: str) -> None:
    table = {"domains": ["a.test"], "value": "x", key: value}
    with pytest.raises(ConfigError) as err:
        parse_credentials({"credentials": {"gh": table}}, "cfg.toml")
    assert needle in err.value.message and "[credentials.gh]" in err.value.message
    assert "\n" not in err.value.message


def test_reader_parses_commands_caps_shallow_and_stops_at_flush() -> None:
    data = body((A, B, "refs/heads/mux/fix-1"), (ZERO, B, "refs/heads/mux/fix-1/x"), (A, ZERO, "refs/heads/y"),
                shallow=(A,), pack=b"PACK...")
    push = CommandReader().feed(data)
    assert push is not None
    assert [c.kind for c in push.commands] == ["update", "create", "delete"]
    assert push.capabilities == {"report-status", "side-band-64k"}


def test_reader_needs_the_whole_command_list_bytewise() -> None:
    data = body((A, B, "refs/heads/main"))
    reader = CommandReader()
    results = [reader.feed(data[i:i + 1]) for i in range(data.index(b"0000") + 3)]
    assert all(r is None for r in results)
    assert reader.feed(b"0") is not None


@pytest.mark.parametrize("data", [
    pytest.param(b"GET / HTTP/1.1\r\n", id="not-hex"),
    pytest.param(b"0001", id="delim"),
    pytest.param(b"0003", id="short"),
    pytest.param(pkt(b"aaaa bbbb refs/heads/x"), id="short-oids"),
    pytest.param(pkt(f"{A} {'c' * 64} refs/heads/x".encode()), id="mixed-hash-lengths"),
    pytest.param(pkt(b"push-cert\0report-status\n"), id="push-cert"),
    pytest.param(pkt(f"{A} {B} refs/heads/x\0caps\n".encode()) + pkt(f"{A} {B} refs/heads/y\0more\n".encode()),
                 id="caps-twice"),
    pytest.param(pkt(f"{A} {B} refs/heads/\xff".encode("latin-1")), id="not-ascii"),
    pytest.param(pkt(f"{A} {B} refs/heads/a b".encode()), id="space-in-ref"),
])
def test_reader_refuses_what_is_not_a_push(data: bytes) -> None:
    with pytest.raises(NotAPush):
        CommandReader().feed(data)


def test_reader_bounds_the_command_section() -> None:
    reader = CommandReader()
    line = pkt(f"{A} {B} refs/heads/mux/fix-1/{'x' * 900}\n".encode())
    with pytest.raises(NotAPush, match="no end of the ref-update commands"):
        for _ in range(gitpush.MAX_COMMANDS // len(line) + 2):
            reader.feed(line)


@pytest.mark.parametrize(("ref", "allowed"), [
    ("refs/heads/mux/fix-1", True),
    ("refs/heads/mux/fix-1/work", True),
    ("refs/heads/mux/fix-1/a/b", True),
    ("refs/heads/mux/fix-12", False),
    ("refs/heads/mux/fix-1-x", False),
    ("refs/heads/mux/fix-10/work", False),
    ("refs/heads/main", False),
    ("refs/tags/v1", False),
    ("refs/notes/commits", False),
    ("refs/heads/mux/fix-1/../main", False),
    ("refs/heads/mux/fix-1//x", False),
    ("refs/heads/mux/fix-1/x.lock", False),
    ("refs/heads/mux/fix-1/.hidden", False),
    ("refs/heads/mux/fix-1/x@{1}", False),
    ("refs/heads/mux/fix-1/", False),
    ("refs/heads/mux/fix-1/a\x01", False),
    ("refs/heads/mux/fix-1/a:b", False),
    ("HEAD", False),
    ("mux/fix-1", False),
])
def test_session_rule_allows_only_its_prefix(ref: str, allowed: bool) -> None:
    push = gitpush.Push((Command(A, B, ref),), frozenset())
    assert (decide(push, RULE, "fix-1") is None) is allowed


def test_one_bad_ref_refuses_the_whole_push_and_names_it() -> None:
    g = gate(body((ZERO, B, "refs/heads/mux/fix-1/ok"), (A, ZERO, "refs/heads/other")))
    assert g.decided and not g.allowed and g.refusal is not None
    assert g.refusal.message == ("mux: push to refs/heads/other refused: session fix-1 may push only to "
                                 "refs/heads/mux/fix-1/* ([credentials.github] git_push)")
    assert g.refusal.audit == {"refused": "git_push", "ref": "refs/heads/other", "kind": "delete"}
    assert g.held == []  # nothing of a refused push is kept


def test_none_refuses_everything_and_any_allows_everything() -> None:
    data = body((A, B, "refs/heads/mux/fix-1"))
    none = gate(data, CredentialRule("gh", ("a.test",), value="x", git_push="none"))
    assert none.refusal is not None and 'git_push = "none"' in none.refusal.message
    assert gate(body((A, B, "refs/heads/main")), CredentialRule("gh", ("a.test",), value="x",
                                                                git_push="any")).allowed


@pytest.mark.parametrize("step", [0, 1, 7, 4096])
@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_gate_holds_everything_until_it_allows(step: int, encoding: str) -> None:
    raw = body((A, B, "refs/heads/mux/fix-1/w"), options=("ci.skip",), pack=b"PACK" + bytes(range(256)) * 64)
    data = gzip.compress(raw) if encoding else raw
    g = PushGate(RULE, "fix-1", encoding)
    fed = 0
    chunks = [data[i:i + step] for i in range(0, len(data), step)] if step else [data]
    for chunk in chunks:
        fed += len(chunk)
        if g.feed(chunk):
            break
    assert g.allowed
    assert g.take_held() == data[:fed]  # exactly what came, to forward as it came


def test_gzip_refusal_and_broken_gzip_and_other_encodings() -> None:
    refused = gate(gzip.compress(body((A, B, "refs/heads/main"))), encoding="gzip", step=5)
    assert refused.refusal is not None and "refs/heads/main" in refused.refusal.message
    broken = gate(b"\x1f\x8bnot really gzip", encoding="gzip")
    assert broken.refusal is not None and "does not inflate" in broken.refusal.message
    other = PushGate(RULE, "fix-1", "br")
    assert other.decided and other.refusal is not None and "'br' is not read" in other.refusal.message


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_gits_probe_is_allowed_only_alone(encoding: str) -> None:
    """git POSTs a bare flush before a large push (to settle auth): nothing to update."""
    def wrap(data: bytes) -> bytes:
        return gzip.compress(data) if encoding else data

    assert gate(wrap(b"0000"), encoding=encoding).allowed
    assert gate(wrap(b"0000"), encoding=encoding, step=1).allowed
    for more in (b"0000PACK", b"00000000", b"0000" + pkt(f"{A} {B} refs/heads/main".encode())):
        refused = gate(wrap(more), encoding=encoding, step=3)
        assert refused.refusal is not None and "after an empty command list" in refused.refusal.message


def test_a_gzip_bomb_is_not_inflated_whole() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = bomb.compress(b"0" * (64 << 20)) + bomb.flush()
    g = gate(data, encoding="gzip")
    assert g.refusal is not None  # "0000" then more zeros: data after an empty command list


def test_body_ending_early_is_refused() -> None:
    data = body((A, B, "refs/heads/mux/fix-1"))
    g = gate(data[:20])
    assert g.refusal is not None and "ended before" in g.refusal.message


def test_refusal_result_is_what_git_reads() -> None:
    g = gate(body((A, B, "refs/heads/mux/fix-1"), (A, B, "refs/heads/main")))
    assert g.refusal is not None
    out = refusal_result(g.refusal)
    # side-band: the message on band 2, the report on band 1, then a flush
    size = int(out[:4], 16)
    assert out[4:5] == b"\2" and out[5:size] == g.refusal.message.encode() + b"\n"
    band1 = out[size:]
    report = band1[5:int(band1[:4], 16)]
    assert report.startswith(pkt(b"unpack ok\n"))
    assert pkt(b"ng refs/heads/main " + g.refusal.message.encode() + b"\n") in report
    assert report.endswith(b"0000") and out.endswith(b"0000")


def test_refusal_without_sideband_or_report() -> None:
    plain = gate(body((A, B, "refs/heads/main"), caps="report-status"))
    assert plain.refusal is not None
    assert refusal_result(plain.refusal).startswith(pkt(b"unpack ok\n"))
    bare = gate(body((A, B, "refs/heads/main"), caps="ofs-delta"))
    assert bare.refusal is not None
    assert refusal_result(bare.refusal) == pkt(b"ERR " + bare.refusal.message.encode() + b"\n")


@pytest.mark.parametrize(("method", "path", "ctype", "push", "fetch"), [
    ("POST", "/o/r.git/git-receive-pack", "application/x-git-receive-pack-request", True, False),
    ("POST", "/o/r.git/GIT-RECEIVE-PACK/", "", True, False),
    ("POST", "/o/r.git/git-receive%2Dpack", "", True, False),
    ("PUT", "/o/r.git/git-receive-pack", "", True, False),
    ("POST", "/o/r.git/x", "application/x-git-receive-pack-request", True, False),
    ("GET", "/o/r.git/info/refs?service=git-receive-pack", "", False, False),
    ("POST", "/o/r.git/git-upload-pack", "application/x-git-upload-pack-request", False, True),
    ("POST", "/o/r.git/git-upload-pack", "application/x-git-receive-pack-request", True, False),
    ("POST", "/api/v3/repos/o/r/git/refs", "application/json", False, False),
])
def test_request_kinds(method: str, path: str, ctype: str, push: bool, fetch: bool) -> None:
    assert gitpush.is_push(method, path, ctype) is push
    assert gitpush.is_fetch(method, path, ctype) is fetch


@pytest.mark.parametrize(("method", "path", "refused"), [
    ("GET", "/repos/o/r/issues", False), ("HEAD", "/", False), ("OPTIONS", "/", False),
    ("POST", "/o/r.git/git-upload-pack", False), ("POST", "/repos/o/r/issues", True),
    ("PATCH", "/repos/o/r", True), ("DELETE", "/repos/o/r", True), ("PUT", "/x", True),
    ("POST", "/o/r.git/git-receive-pack", True),
])
def test_read_only(method: str, path: str, refused: bool) -> None:
    rule = CredentialRule("ro", ("a.test",), value="x", read_only=True)
    found = gitpush.read_only_refusal(rule, method, path, "")
    assert (found is not None) is refused
    if found is not None:
        assert found.audit == {"refused": "read_only", "method": method}
        assert "[credentials.ro] is read_only" in found.message
    assert gitpush.read_only_refusal(RULE, "POST", path, "") is None


@given(st.binary(max_size=300))
def test_any_bytes_are_decided_or_refused_never_crash(data: bytes) -> None:
    g = gate(data)
    assert g.decided
    assert not g.allowed or data == b"0000"  # random bytes never make a push; git's probe is one
