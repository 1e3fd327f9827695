"""mitmdump addon for the tests' HTTP/2 front (test_proxy_gitpush.py): an HTTP/2 request
body of unknown length (git streams its packs so) is buffered here; give the HTTP/1.0
backend its length, which it needs to read the body at all."""

from mitmproxy import http


def request(flow: http.HTTPFlow) -> None:
    body = flow.request.raw_content
    if body is not None and "content-length" not in flow.request.headers:
        flow.request.headers["content-length"] = str(len(body))
