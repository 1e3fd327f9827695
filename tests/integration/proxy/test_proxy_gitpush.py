"""git_push and read_only on a real proxy, real git in a real session, a real smart-HTTP server.

The server is git's own http-backend over TLS on the bridge gateway, reached by
``*.test`` names that resolve only inside the proxy process (the agents tests'
resolve/sitecustomize.py); the proxy injects its Basic credential, the session
never has it. Each test pushes to a fresh bare repository and checks its refs
on disk, and that a refused push never reached the server at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, mux
from tests.integration.agents.conftest import RESOLVE_DIR
from tests.integration.proxy.harness import ProxyUnderTest, SessionContainer, run_session, start_proxy
from tests.integration.proxy.servers import Pki, TLSGitServer, make_pki

pytestmark = pytest.mark.docker
GIT_USER = "agent-bot"
NAMES = {"session": "git.test", "none": "nopush.test", "ro": "ro.test", "any": "anypush.test",
         "team": "team.test", "h2": "h2git.test"}
SETTING = {"session": "", "none": 'git_push = "none"', "ro": "read_only = true", "any": 'git_push = "any"',
           "team": 'push_prefix = "team/alice/{session}"', "h2": ""}


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.fixture(scope="module")
def names_pki(tmp_path_factory: pytest.TempPathFactory, gateway: str) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki-git"), [*NAMES.values(), gateway])


@pytest.fixture(scope="module")
def front_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA of the HTTP/2 front (see ``h2_front``), made before the proxy that trusts it."""
    from mitmproxy.certs import CertStore

    confdir = tmp_path_factory.mktemp("h2-front")
    CertStore.from_store(confdir, "mitmproxy", 2048)
    return confdir


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, names_pki: Pki, gateway: str,
          front_ca: Path) -> Iterator[ProxyUnderTest]:
    rules = "".join(f"""
[credentials.{key}]
domains = ["{name}"]
auth_type = "basic"
username = "{GIT_USER}"
password = "${{MUX_TEST_PROXY_TOKEN}}"
{SETTING[key]}
""" for key, name in NAMES.items())
    config = f"""
[proxy]
[proxy.filters]
allowed_networks = ["{gateway}/32"]
{rules}"""
    resolve = ",".join(f"{name}={gateway}" for name in NAMES.values())
    tmp = tmp_path_factory.mktemp("proxy-gitpush")
    cas = tmp / "upstream-cas.pem"
    cas.write_text(names_pki.ca.read_text() + (front_ca / "mitmproxy-ca-cert.pem").read_text())
    extra = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(RESOLVE_DIR)]), "MUX_TEST_RESOLVE": resolve,
             "MUX_PROXY_UPSTREAM_CA": str(cas)}
    yield from start_proxy(tmp, config, names_pki, extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, names_pki: Pki, gateway: str,
           proxy: ProxyUnderTest) -> Iterator[TLSGitServer]:
    with TLSGitServer(tmp_path_factory.mktemp("git-root"), gateway, names_pki,
                      auth=(GIT_USER, proxy.token)) as srv:
        yield srv


@pytest.fixture(scope="module")
def h2_front(server: TLSGitServer, front_ca: Path, gateway: str,
             proxy: ProxyUnderTest) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """The same repositories behind an HTTP/2 server, as on GitHub: a mitmdump reverse
    proxy (TLS, h2) on the gateway in front of a plain http-backend on loopback. The
    session's git then speaks HTTP/2 to mux's proxy, which speaks it upstream.
    Yields its port and the backend's list of requests seen."""
    import socket
    import sys
    import time

    from tests.integration.git_http import GitHTTPServer
    from tests.integration.proxy.harness import free_port

    port = free_port()
    with GitHTTPServer(server.root, auth=(GIT_USER, proxy.token)) as plain:
        backend = plain.url.rsplit(":", 1)[1]
        front = subprocess.Popen(
            [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()",
             "--mode", f"reverse:http://127.0.0.1:{backend}@{gateway}:{port}", "--set", f"confdir={front_ca}",
             "-s", str(Path(__file__).with_name("h2_front.py")), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection((gateway, port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or front.poll() is not None:
                        raise AssertionError("the HTTP/2 front did not start") from None
                    time.sleep(0.2)
            yield port, plain.seen
        finally:
            front.terminate()
            front.wait(10)


@pytest.fixture(scope="module")
def box(proxy: ProxyUnderTest) -> Iterator[SessionContainer]:
    yield from run_session(proxy, None, ["--env", "GIT_TERMINAL_PROMPT=0"])


class Repo:
    """A fresh bare repository on the server: main, a branch `other`, a tag v1."""

    def __init__(self, server: TLSGitServer, box: SessionContainer, tmp: Path) -> None:
        self.name = f"p{uuid.uuid4().hex[:8]}.git"
        self.bare = server.root / self.name
        self.server, self.box = server, box
        seed = tmp / "seed"
        git("init", "-q", "-b", "main", str(seed))
        (seed / "README").write_text("hello\n")
        git("add", "README", cwd=seed)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "readme", cwd=seed)
        git("branch", "other", cwd=seed)
        git("tag", "v1", cwd=seed)
        git("clone", "-q", "--bare", str(seed), str(self.bare))
        git("config", "http.receivepack", "true", cwd=self.bare)
        git("config", "receive.advertisePushOptions", "true", cwd=self.bare)

    def url(self, kind: str = "session") -> str:
        port = self.server.url.rsplit(":", 1)[1]
        return f"https://{NAMES[kind]}:{port}/{self.name}"

    def refs(self) -> str:
        return git("for-each-ref", "--format=%(objectname) %(refname)", cwd=self.bare)

    def pushes(self) -> int:
        """receive-pack POSTs that reached the server for this repository (counted as their
        headers arrive: a refused push must not get even that far)."""
        return sum(1 for m, p in self.server.seen if m == "POST" and p == f"/{self.name}/git-receive-pack")

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return self.box.sh(f"set -e\ncd /tmp/w\n{script}", timeout=180)


@pytest.fixture
def repo(server: TLSGitServer, box: SessionContainer, tmp_path: Path) -> Repo:
    r = Repo(server, box, tmp_path)
    cloned = box.sh(f"rm -rf /tmp/w && git clone -q {r.url()} /tmp/w && cd /tmp/w && "
                    "git -c user.name=agent -c user.email=a@b commit -q --allow-empty -m 'agent work'",
                    timeout=180)
    assert cloned.returncode == 0, cloned.stderr
    return r


def audit(proxy: ProxyUnderTest) -> list[dict[str, object]]:
    return [json.loads(line) for line in proxy.files.audit.read_text().splitlines()]


def test_fetch_works_and_push_to_own_branch_lands(repo: Repo, box: SessionContainer,
                                                  proxy: ProxyUnderTest) -> None:
    own = f"refs/heads/mux/{box.session}/work"
    res = repo.sh(f"git fetch -q origin && git push -q -o ci.skip origin HEAD:{own} && git rev-parse HEAD")
    assert res.returncode == 0, res.stderr
    assert f"{res.stdout.strip()} {own}" in repo.refs()
    assert repo.pushes() == 1
    # The bare session branch (what `mux new --repo` checks out) is the session's too.
    res = repo.sh(f"git push -q origin HEAD:refs/heads/mux/{box.session}-other 2>&1 || echo refused")
    assert "refused" in res.stdout  # another session's name is not this one's prefix
    assert proxy.token not in box.sh("env; cat /tmp/w/.git/config").stdout


REFUSED = [
    pytest.param("git push origin HEAD:main", "refs/heads/main", id="main"),
    pytest.param("git tag v2 && git push origin v2", "refs/tags/v2", id="new-tag"),
    pytest.param("git push origin :other", "refs/heads/other", id="delete-other-branch"),
    pytest.param("git push --force origin HEAD:other", "refs/heads/other", id="force-over-other"),
    pytest.param("git push --atomic origin HEAD:refs/heads/mux/{s}/ok HEAD:refs/heads/elsewhere",
                 "refs/heads/elsewhere", id="two-refs-one-outside"),
    pytest.param("git push origin HEAD:refs/heads/mux/{s}/ok HEAD:refs/notes/commits",
                 "refs/notes/commits", id="two-refs-note"),
    pytest.param("git -c protocol.version=2 push origin HEAD:main", "refs/heads/main", id="protocol-v2"),
    pytest.param("git -c protocol.version=1 push origin HEAD:main", "refs/heads/main", id="protocol-v1"),
    pytest.param("git push -o ci.skip origin HEAD:main", "refs/heads/main", id="push-option"),
]


@pytest.mark.parametrize(("command", "ref"), REFUSED)
def test_push_outside_the_session_prefix_is_refused_whole(repo: Repo, box: SessionContainer,
                                                         proxy: ProxyUnderTest, command: str, ref: str) -> None:
    before = repo.refs()
    res = repo.sh(command.format(s=box.session) + " 2>&1 && echo PUSHED || echo FAILED")
    assert "FAILED" in res.stdout, res.stdout
    line = (f"mux: push to {ref} refused: session {box.session} may push only to "
            f"refs/heads/mux/{box.session}/* ([credentials.session] git_push)")
    assert f"remote: {line}" in res.stdout
    assert "[remote rejected]" in res.stdout
    assert repo.refs() == before
    assert repo.pushes() == 0  # the server received nothing
    entry = [e for e in audit(proxy) if e.get("refused") == "git_push"][-1]
    assert (entry["ref"], entry["session"]) == (ref, box.key)
    assert proxy.token not in proxy.files.audit.read_text()


def test_shallow_clone_pushes_its_own_branch(repo: Repo, box: SessionContainer) -> None:
    res = box.sh(f"""set -e
rm -rf /tmp/sh && git clone -q --depth 1 {repo.url()} /tmp/sh && cd /tmp/sh
git -c user.name=agent -c user.email=a@b commit -q --allow-empty -m shallow
git push -q origin HEAD:refs/heads/mux/{box.session}
git push origin HEAD:main 2>&1 || true""", timeout=180)
    assert res.returncode == 0, res.stderr
    assert f"refs/heads/mux/{box.session}\n" in repo.refs()
    assert "mux: push to refs/heads/main refused" in res.stdout


def _raw_push(repo: Repo, box: SessionContainer, ref: str, encode: str) -> subprocess.CompletedProcess[str]:
    """A push request made by hand (commands, then a pack) and POSTed with curl."""
    caps = "report-status side-band-64k"
    return repo.sh(f"""new=$(git rev-parse HEAD); ref={ref}; caps='{caps}'
len=$((4 + 40 + 1 + 40 + 1 + ${{#ref}} + 1 + ${{#caps}} + 1))
{{ printf '%04x%s %s %s\\0%s\\n0000' $len 0000000000000000000000000000000000000000 $new $ref "$caps"
  echo $new | git pack-objects -q --revs --stdout; }} > body
{encode}
curl -sS -o out -w '%{{http_code}}\\n' -H 'Content-Type: application/x-git-receive-pack-request' \
  $headers --data-binary @body {repo.url()}/git-receive-pack
cat out | tr -d '\\000-\\011\\013-\\037' ; echo""")


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_hand_made_push_gzip_or_not(repo: Repo, box: SessionContainer, gzip: bool) -> None:
    encode = "gzip -n body && mv body.gz body; headers='-H Content-Encoding:gzip'" if gzip else "headers="
    before = repo.refs()
    res = _raw_push(repo, box, "refs/heads/main", encode)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("200\n"), res.stdout
    assert "mux: push to refs/heads/main refused" in res.stdout
    assert repo.refs() == before and repo.pushes() == 0
    own = f"refs/heads/mux/{box.session}/raw"
    res = _raw_push(repo, box, own, encode)
    assert res.returncode == 0 and "unpack ok" in res.stdout and f"ok {own}" in res.stdout, res.stdout
    assert own in repo.refs() and repo.pushes() == 1


@pytest.mark.parametrize("body", [
    pytest.param("printf 'not pkt-lines at all'", id="garbage"),
    pytest.param("printf '00000000'", id="flush-then-more"),
    pytest.param("printf '0032%s' 'aaaa bbbb refs/heads/main'", id="not-a-command"),
    pytest.param("printf ''", id="empty"),
])
def test_a_body_that_is_no_push_is_refused_not_forwarded(repo: Repo, body: str) -> None:
    before = repo.refs()
    res = repo.sh(f"""{body} > body
curl -sS -o out -w '%{{http_code}}\\n' -H 'Content-Type: application/x-git-receive-pack-request' \
  --data-binary @body {repo.url()}/git-receive-pack; tr -d '\\000-\\037' < out""")
    assert res.returncode == 0, res.stderr
    assert "mux: push refused:" in res.stdout, res.stdout
    assert repo.refs() == before and repo.pushes() == 0


def test_gits_probe_alone_reaches_the_server(repo: Repo) -> None:
    """Before a large push git POSTs a bare flush ("0000") to settle auth: forwarded
    (the server updates nothing), not refused, not audited as a refusal."""
    res = repo.sh(f"""printf 0000 > body
curl -sS -o /dev/null -w '%{{http_code}}\\n' -H 'Content-Type: application/x-git-receive-pack-request' \
  --data-binary @body {repo.url()}/git-receive-pack""")
    assert res.stdout == "200\n", res.stdout + res.stderr
    assert repo.pushes() == 1


def test_a_large_pack_streams_through_and_a_large_refused_one_reaches_nothing(
        repo: Repo, box: SessionContainer) -> None:
    # ~24 MB of incompressible data: a chunked request, streamed by the proxy.
    res = repo.sh(f"""head -c 24000000 /dev/urandom > big && git add big
git -c user.name=agent -c user.email=a@b commit -q -m big
git push origin HEAD:main 2>&1 || echo FAILED
git push -q origin HEAD:refs/heads/mux/{box.session}/big && echo LANDED""")
    assert res.returncode == 0, res.stderr
    assert "FAILED" in res.stdout and "mux: push to refs/heads/main refused" in res.stdout
    assert "LANDED" in res.stdout
    assert repo.pushes() == 3  # git's two probes ("0000") and the allowed push; never the refused one
    assert f"refs/heads/mux/{box.session}/big" in repo.refs()


def test_git_push_none_refuses_every_push(repo: Repo, box: SessionContainer) -> None:
    before = repo.refs()
    res = repo.sh(f"git remote add none {repo.url('none')} && git fetch -q none && "
                  f"git push none HEAD:refs/heads/mux/{box.session} 2>&1 || echo FAILED")
    assert "FAILED" in res.stdout
    assert (f"mux: push to refs/heads/mux/{box.session} refused: no pushes through this credential "
            '([credentials.none] git_push = "none")') in res.stdout
    assert repo.refs() == before and repo.pushes() == 0


def test_git_push_any_is_todays_behaviour(repo: Repo) -> None:
    res = repo.sh(f"git remote add any {repo.url('any')} && git push -q any HEAD:main && git rev-parse HEAD")
    assert res.returncode == 0, res.stderr
    assert f"{res.stdout.strip()} refs/heads/main" in repo.refs()


def test_read_only_injects_on_get_and_fetch_and_refuses_writes(repo: Repo, box: SessionContainer,
                                                               proxy: ProxyUnderTest) -> None:
    # A clone is GET info/refs plus POST git-upload-pack: both get the credential.
    res = box.sh(f"rm -rf /tmp/ro && git clone -q {repo.url('ro')} /tmp/ro && git -C /tmp/ro log --format=%s -1",
                 timeout=180)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "readme"
    before, requests = repo.refs(), len(repo.server.seen)
    res = box.sh(f"curl -sS -w '%{{http_code}}\\n' -X POST --data x {repo.url('ro')}/anything")
    assert res.stdout.splitlines() == [
        "mux proxy: POST refused: [credentials.ro] is read_only (only GET, HEAD, OPTIONS and git fetch "
        "get its credential)", "403"]
    res = repo.sh(f"git remote add ro {repo.url('ro')} && git push ro HEAD:refs/heads/mux/{box.session} 2>&1 "
                  "|| echo FAILED")
    assert "FAILED" in res.stdout and "403" in res.stdout
    assert len(repo.server.seen) == requests + 1  # the push's GET info/refs only
    assert repo.refs() == before
    refused = [e for e in audit(proxy) if e.get("refused") == "read_only"]
    assert refused and refused[-1]["method"] == "POST" and refused[-1]["injected"] is False


def test_list_and_proxy_status_show_each_sessions_push_prefix(box: SessionContainer, proxy: ProxyUnderTest) -> None:
    want = {"session": f"refs/heads/mux/{box.session}", "none": None, "ro": None, "any": "*",
            "team": f"refs/heads/team/alice/{box.session}", "h2": f"refs/heads/mux/{box.session}"}
    listed = {s["name"]: s for s in json.loads(mux("list", "--json", env=proxy.env, check=True).stdout)}
    assert listed[box.session]["push_prefix"] == want
    status = json.loads(mux("proxy", "status", "--json", env=proxy.env, check=True).stdout)
    assert status["push_prefix"][box.key] == want


def test_push_prefix_setting_moves_the_session_namespace(repo: Repo, box: SessionContainer) -> None:
    res = repo.sh(f"git remote add team {repo.url('team')} && "
                  f"git push -q team HEAD:refs/heads/team/alice/{box.session}/x && echo LANDED; "
                  f"git push team HEAD:refs/heads/mux/{box.session} 2>&1 || echo FAILED")
    assert "LANDED" in res.stdout and "FAILED" in res.stdout, res.stdout
    assert (f"session {box.session} may push only to refs/heads/team/alice/{box.session}/* "
            "([credentials.team] git_push)") in res.stdout
    assert f"refs/heads/team/alice/{box.session}/x" in repo.refs()
    assert f"refs/heads/mux/{box.session}\n" not in repo.refs()


def test_http2_push_is_checked_the_same(repo: Repo, box: SessionContainer,
                                       h2_front: tuple[int, list[tuple[str, str]]]) -> None:
    port, seen = h2_front
    url = f"https://{NAMES['h2']}:{port}/{repo.name}"
    before = repo.refs()
    res = repo.sh(f"git remote add h2 {url} && git fetch -q h2 && "
                  f"GIT_CURL_VERBOSE=1 git push h2 HEAD:main 2>&1 || echo FAILED")
    assert "FAILED" in res.stdout
    assert "using HTTP/2" in res.stdout and "POST /" in res.stdout, res.stdout[-3000:]
    assert f"remote: mux: push to refs/heads/main refused: session {box.session}" in res.stdout
    assert repo.refs() == before
    assert not [p for m, p in seen if m == "POST" and p.endswith("git-receive-pack")]
    # A pack of ~1 MB over HTTP/2: held, allowed, streamed. (Larger ones: see docs/proxy.md's
    # note on HTTP/2 uploads from Debian 12's git, which fail with or without git_push.)
    res = repo.sh(f"""head -c 1000000 /dev/urandom > big && git add big
git -c user.name=agent -c user.email=a@b commit -q -m big
git push -q h2 HEAD:refs/heads/mux/{box.session}/h2 && echo LANDED""")
    assert "LANDED" in res.stdout, res.stderr
    assert f"refs/heads/mux/{box.session}/h2" in repo.refs()
    assert git("cat-file", "-s", f"refs/heads/mux/{box.session}/h2:big", cwd=repo.bare).strip() == "1000000"
