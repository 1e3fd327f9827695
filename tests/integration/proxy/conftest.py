"""Fixtures for the credential-proxy tests: the bridge gateway and a test PKI for the upstreams.

Network: only loopback, the Docker bridge gateway and containers the tests start.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mux.egress import netinfo
from tests.conftest import require_engine
from tests.integration.proxy.servers import EchoUpstream, Pki, make_pki


@pytest.fixture(scope="session")
def gateway() -> str:
    require_engine()
    found = netinfo.bridge_gateway()
    if not found:
        pytest.fail("no Docker bridge gateway address found")
    return found


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory, gateway: str) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), [gateway, "127.0.0.1"])


@pytest.fixture
def api(pki: Pki, gateway: str) -> Iterator[EchoUpstream]:
    """The credential host: an HTTPS API on the bridge gateway (test_proxy_http.py keeps
    one per module)."""
    with EchoUpstream(gateway, pki) as server:
        yield server
