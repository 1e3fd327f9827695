"""What a session may push, decided from the push itself: pure parsing and policy.

A smart-HTTP push is ``POST .../git-receive-pack`` whose body starts with the
ref-update commands as pkt-lines (``old-id new-id refname``, the first with
``NUL capabilities``; ``shallow`` lines may come first; a flush ends them),
then push options (if asked for), then the pack. Protocol v0, v1 and a v2
request all push this way: receive-pack has no v2 form. :class:`PushGate` is
fed the request body as it arrives (raw, ``gzip`` or not) and decides as soon
as the command list is complete; until then it holds what came (bounded), so
the caller forwards nothing before the decision. Anything it cannot read as a
push is refused: reading it differently from the server would let a push by.

The refusal is an answer the git client shows: a 200 ``receive-pack-result``
whose report-status says ``ng`` for every ref, with the reason on the progress
band (``remote: mux: push to refs/heads/main refused: ...``), or an ``ERR``
packet when the client asked for no report.

No mitmproxy here (mux/proxy/gate.py feeds it from the proxy).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote

from mux.proxy.settings import CredentialRule, push_ref_prefix

# Commands plus capabilities of any real push fit in far less; a push that has
# not finished its command list by then is not one mux will read further.
MAX_COMMANDS = 1 << 20
MAX_HELD = 4 << 20  # raw (maybe compressed) bytes held before a decision
READ_METHODS = ("GET", "HEAD", "OPTIONS")
_OID = r"(?:[0-9a-f]{40}|[0-9a-f]{64})"
_COMMAND = re.compile(rf"({_OID}) ({_OID}) (\S+)")
_SHALLOW = re.compile(rf"shallow {_OID}")
_ZERO = re.compile(r"0+")
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(?:/|$)|[/.]$")
RESULT_TYPE = "application/x-git-receive-pack-result"


class NotAPush(Exception):
    """The body is not a push mux can read (refused: never forwarded)."""


@dataclass(frozen=True)
class Command:
    old: str
    new: str
    ref: str

    @property
    def kind(self) -> str:
        if _ZERO.fullmatch(self.old):
            return "create"
        return "delete" if _ZERO.fullmatch(self.new) else "update"


@dataclass(frozen=True)
class Push:
    commands: tuple[Command, ...]
    capabilities: frozenset[str]


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: ``message`` for the client, ``audit`` for the log."""

    message: str
    audit: dict[str, str]
    push: Push | None = None


def printable(text: str, limit: int = 200) -> str:
    """Client-supplied text safe for a message: control characters escaped, bounded."""
    out = "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _normal_path(path: str) -> str:
    return unquote(path.split("?", 1)[0]).lower().rstrip("/")


def is_push(method: str, path: str, content_type: str) -> bool:
    """A write to git's receive-pack (read generously: what a server might take as one)."""
    if method.upper() in READ_METHODS:
        return False
    return "receive-pack" in _normal_path(path) or "receive-pack" in content_type.lower()


def is_fetch(method: str, path: str, content_type: str) -> bool:
    return (method.upper() == "POST" and _normal_path(path).endswith("/git-upload-pack")
            and not is_push(method, path, content_type))


def read_only_refusal(rule: CredentialRule, method: str, path: str, content_type: str) -> Refusal | None:
    """For a ``read_only`` rule: None when the request only reads (GET, HEAD, OPTIONS, git fetch)."""
    if not rule.read_only or method.upper() in READ_METHODS or is_fetch(method, path, content_type):
        return None
    return Refusal(
        f"mux proxy: {printable(method, 20)} refused: [credentials.{rule.name}] is read_only "
        f"(only GET, HEAD, OPTIONS and git fetch get its credential)",
        {"refused": "read_only", "method": printable(method, 20)},
    )


def decide(push: Push, rule: CredentialRule, session: str) -> Refusal | None:
    """None if every command of ``push`` is one ``session`` may make through ``rule``;
    else the refusal, naming the first ref that may not be updated."""
    prefix = push_ref_prefix(rule, session)
    where = f"[credentials.{rule.name}] git_push"
    for cmd in push.commands:
        ref = printable(cmd.ref)
        if _BAD_REF.search(cmd.ref) or not cmd.ref.startswith("refs/"):
            why = f"mux: push to {ref} refused: not a valid ref name ({where})"
        elif prefix is None:
            why = f"mux: push to {ref} refused: no pushes through this credential ({where} = \"none\")"
        elif prefix == "*" or cmd.ref == prefix or cmd.ref.startswith(prefix + "/"):
            continue
        else:
            why = f"mux: push to {ref} refused: session {session} may push only to {prefix}/* ({where})"
        return Refusal(why, {"refused": "git_push", "ref": ref, "kind": cmd.kind}, push)
    return None


def not_a_push(rule: CredentialRule, why: str) -> Refusal:
    return Refusal(f"mux: push refused: {why} ([credentials.{rule.name}] git_push)",
                   {"refused": "git_push", "ref": "", "kind": "unreadable"})


class CommandReader:
    """pkt-lines in, the command list out once its flush arrives; NotAPush on anything else."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.seen = 0
        self.commands: list[Command] = []
        self.caps: frozenset[str] = frozenset()

    def feed(self, data: bytes) -> Push | None:
        self.seen += len(data)
        if self.seen > MAX_COMMANDS:
            raise NotAPush(f"no end of the ref-update commands in the first {MAX_COMMANDS} bytes")
        self.buf += data
        while len(self.buf) >= 4:
            try:
                size = int(self.buf[:4].decode("ascii"), 16)
            except (UnicodeDecodeError, ValueError):
                raise NotAPush("the body is not pkt-lines") from None
            if size == 0:
                # No commands at all: git's probe before a large push (only "0000"; PushGate
                # allows it only when nothing follows). The server updates nothing for it.
                del self.buf[:4]
                return Push(tuple(self.commands), self.caps)
            if size < 4:
                raise NotAPush("a special packet inside the ref-update commands")
            if len(self.buf) < size:
                return None
            payload = bytes(self.buf[4:size])
            del self.buf[:size]
            self._line(payload)
        return None

    def _line(self, payload: bytes) -> None:
        line, nul, caps = payload.partition(b"\0")
        try:
            text = line.decode("ascii").removesuffix("\n")
        except UnicodeDecodeError:
            raise NotAPush("a ref-update command that is not ASCII") from None
        if not self.commands and not nul and _SHALLOW.fullmatch(text):
            return  # shallow pushes name their boundary commits first
        if text == "push-cert" or text.startswith("push-cert"):
            raise NotAPush("signed pushes (push-cert) are not supported")
        if nul and self.commands:
            raise NotAPush("capabilities after the first command")
        found = _COMMAND.fullmatch(text)
        if found is None or len(found[1]) != len(found[2]):
            raise NotAPush(f"not a ref-update command: {printable(text, 80)!r}")
        if not self.commands:
            self.caps = frozenset(caps.decode("ascii", "replace").split())
        self.commands.append(Command(found[1], found[2], found[3]))


@dataclass
class PushGate:
    """Decides one push from its body as it arrives. ``feed`` returns None until the
    decision; then ``allowed`` says which, and ``refusal`` why not."""

    rule: CredentialRule
    session: str
    encoding: str = ""
    refusal: Refusal | None = None
    decided: bool = False
    held: list[bytes] = field(default_factory=list)
    _held_size: int = 0
    _reader: CommandReader = field(default_factory=CommandReader)
    _inflate: zlib._Decompress | None = None
    _probe: bool = False  # a bare flush so far: allowed only if the body ends there

    def __post_init__(self) -> None:
        if self.refusal is not None:
            self.decided = True
            return
        coding = self.encoding.strip().lower()
        if coding == "gzip":
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding not in ("", "identity"):
            self._refuse(not_a_push(self.rule, f"Content-Encoding {printable(coding, 40)!r} is not read"))

    @property
    def allowed(self) -> bool:
        return self.decided and self.refusal is None

    def _refuse(self, refusal: Refusal) -> bool:
        self.refusal, self.decided = refusal, True
        self.held.clear()
        return True

    def feed(self, data: bytes) -> bool:
        """True once decided (the held bytes are then the caller's to forward or drop)."""
        if self.decided:
            return True
        self.held.append(data)
        self._held_size += len(data)
        try:
            if self._held_size > MAX_HELD:
                raise NotAPush(f"no end of the ref-update commands in the first {MAX_HELD} bytes")
            plain = data
            if self._inflate is not None:
                # Only as much as the command list can need: no inflating a whole pack.
                plain = self._inflate.decompress(data, MAX_COMMANDS + 1)
            if self._probe:
                if plain:
                    raise NotAPush("data after an empty command list")
                return False
            push = self._reader.feed(plain)
            if push is not None and not push.commands:
                self._probe = True
                if self._reader.buf:
                    raise NotAPush("data after an empty command list")
                return False
        except (NotAPush, zlib.error) as exc:
            return self._refuse(not_a_push(self.rule, str(exc) if isinstance(exc, NotAPush)
                                           else "the gzip body does not inflate"))
        if push is None:
            return False
        self.decided = True
        refusal = decide(push, self.rule, self.session)
        return self._refuse(refusal) if refusal is not None else True

    def finish(self) -> None:
        """The body ended: undecided means it never held a whole command list."""
        if self._probe and not self.decided:
            self.decided = True  # git's "0000" probe: nothing to update, nothing to refuse
        elif not self.decided:
            self._refuse(not_a_push(self.rule, "the body ended before its ref-update commands did"))

    def take_held(self) -> bytes:
        out = b"".join(self.held)
        self.held.clear()
        return out


def pkt(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


def refusal_result(refusal: Refusal) -> bytes:
    """The receive-pack result git shows for a refused push: report-status with an
    ``ng`` per ref and the reason on the progress band, as the client asked for it."""
    message = refusal.message.encode("utf-8", "replace")
    push = refusal.push
    caps = push.capabilities if push is not None else frozenset()
    if push is None or not caps & {"report-status", "report-status-v2"}:
        return pkt(b"ERR " + message + b"\n")
    report = pkt(b"unpack ok\n")
    for cmd in push.commands:
        report += pkt(b"ng " + cmd.ref.encode() + b" " + message + b"\n")
    report += b"0000"
    if not caps & {"side-band-64k", "side-band"}:
        return report
    limit = (65520 if "side-band-64k" in caps else 1000) - 5
    out = pkt(b"\2" + message + b"\n")
    for at in range(0, len(report), limit):
        out += pkt(b"\1" + report[at:at + limit])
    return out + b"0000"
