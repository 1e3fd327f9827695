"""The splice pump (mux/proxy/splice.py) on real sockets: bytes in order, whole, both
ways; half-closes passed on; what mitmproxy had read sent first; idle tunnels closed."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

from mux.proxy.splice import Pump, Tunnel


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    b.setblocking(False)  # the proxy's side is non-blocking, as asyncio left it
    return a, b


def run_tunnel(pending: list[bytes], idle: float, body: callable) -> list[str]:  # type: ignore[valid-type]
    client, proxy_client = pair()
    server, proxy_server = pair()
    ended: list[str] = []

    async def go() -> None:
        done = asyncio.Event()
        pump = Pump(idle, lambda conn: (ended.append(conn), done.set()))
        pump.add(Tunnel("c1", [os.dup(proxy_client.fileno()), os.dup(proxy_server.fileno())], pending))
        proxy_client.close()
        proxy_server.close()
        await asyncio.get_running_loop().run_in_executor(None, body, client, server)
        await asyncio.wait_for(done.wait(), 10)

    asyncio.run(go())
    client.close()
    server.close()
    return ended


def read_all(s: socket.socket) -> bytes:
    out = bytearray()
    while chunk := s.recv(1 << 20):
        out += chunk
    return bytes(out)


def test_bytes_go_across_whole_both_ways_and_half_closes_pass_on() -> None:
    up, down = os.urandom(3 << 20), os.urandom(20 << 20)
    got: dict[str, bytes] = {}

    def body(client: socket.socket, server: socket.socket) -> None:
        def serve() -> None:
            got["up"] = read_all(server)  # ends when the client's half-close reaches it
            server.sendall(down)
            server.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=serve)
        t.start()
        client.sendall(up)
        client.shutdown(socket.SHUT_WR)
        got["down"] = read_all(client)
        t.join()

    assert run_tunnel([b"hello-", b""], 60, body) == ["c1"]
    assert got["up"] == b"hello-" + up and got["down"] == down


def test_what_mitmproxy_had_read_from_the_server_comes_first() -> None:
    got: dict[str, bytes] = {}

    def body(client: socket.socket, server: socket.socket) -> None:
        server.sendall(b" and the rest")
        server.shutdown(socket.SHUT_WR)
        client.shutdown(socket.SHUT_WR)
        got["down"] = read_all(client)
        got["up"] = read_all(server)

    run_tunnel([b"", b"ServerHello"], 60, body)
    assert got == {"down": b"ServerHello and the rest", "up": b""}


def test_a_client_gone_both_ways_ends_the_tunnel() -> None:
    got: dict[str, bytes] = {}

    def body(client: socket.socket, server: socket.socket) -> None:
        client.sendall(b"x")
        client.close()
        got["up"] = read_all(server)  # the half-close passed on
        server.sendall(b"late")  # to a client that is gone: the tunnel ends

    assert run_tunnel([b"", b""], 60, body) == ["c1"]
    assert got["up"] == b"x"


def test_an_idle_tunnel_is_closed_after_idle_timeout() -> None:
    got: dict[str, bytes] = {}

    def body(client: socket.socket, server: socket.socket) -> None:
        client.settimeout(10)
        got["down"] = read_all(client)  # nothing either way: closed by the pump

    assert run_tunnel([b"", b""], 1.0, body) == ["c1"]
    assert got["down"] == b""


def test_tunnels_added_while_the_pump_runs_all_finish() -> None:
    # The pump thread services a tunnel as soon as its first socket is registered; the
    # second must be registered by then too (else epoll.modify fails and, before the lock,
    # the pump thread died with every tunnel in it).
    count = 60
    results: list[bytes] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        ended: list[str] = []
        all_done = asyncio.Event()

        def finished(conn: str) -> None:
            ended.append(conn)
            if len(ended) == count:
                all_done.set()

        pump = Pump(60, finished)
        ends = []
        for i in range(count):
            client, proxy_client = pair()
            server, proxy_server = pair()
            server.sendall(b"s%d" % i)  # ready before it joins: the pump acts at once
            server.shutdown(socket.SHUT_WR)
            client.shutdown(socket.SHUT_WR)
            pump.add(Tunnel(f"c{i}", [os.dup(proxy_client.fileno()), os.dup(proxy_server.fileno())],
                            [b"", b"hello-"]))
            proxy_client.close()
            proxy_server.close()
            ends.append((client, server))
            await asyncio.sleep(0)

        def read_them() -> None:
            for client, server in ends:
                client.settimeout(10)
                results.append(read_all(client))
                client.close()
                server.close()

        await loop.run_in_executor(None, read_them)
        await asyncio.wait_for(all_done.wait(), 10)

    asyncio.run(go())
    assert results == [b"hello-s%d" % i for i in range(count)]
