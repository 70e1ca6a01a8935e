"""Which requests the HTTP front door takes (HttpTriggers.claim) and the fast-path guard."""

from __future__ import annotations

from corral.http.app import RootApp
from corral.http.triggers import HttpTriggers
from corral.model.arn import Scope

URL_ID = "a" * 32


def _triggers() -> HttpTriggers:
    return HttpTriggers(None, None, None, Scope())  # type: ignore[arg-type]


def _scope(path: str, host: bytes = b"127.0.0.1:9000") -> dict:
    return {"path": path, "headers": [(b"host", host)], "method": "GET"}


def _target(handler) -> tuple:
    if handler is None:
        return (None,)
    name = getattr(handler, "func", handler).__name__
    return (name, *getattr(handler, "args", ()))


def test_claims():
    t = _triggers()
    host = URL_ID.encode() + b".lambda-url.us-east-1.localhost:9000"
    assert _target(t.claim(_scope("/corral/v1/health", host))) == (
        "_url",
        URL_ID,
        f"{URL_ID}.lambda-url.us-east-1.localhost",
        "",
    )
    short = URL_ID.encode() + b".lambda-url.localhost"
    assert _target(t.claim(_scope("/", short)))[0] == "_url"
    assert _target(t.claim(_scope(f"/url/{URL_ID}/x"))) == (
        "_url",
        URL_ID,
        f"{URL_ID}.lambda-url.us-east-1.localhost",
        f"/url/{URL_ID}",
    )
    assert _target(t.claim(_scope("/api/items/1"))) == ("_api", "api", "/api")
    assert _target(t.claim(_scope("/api"))) == ("_api", "api", "/api")
    assert _target(t.claim(_scope("/x", b"api.localhost:9000"))) == ("_api", "$default", "")
    assert _target(t.claim(_scope("/corral/v1/routes/abc"))) == ("_routes_api",)


def test_leaves_the_rest():
    t = _triggers()
    for path in ("/2015-03-31/functions/f/invocations", "/corral/v1/health", "/apiary", "/"):
        assert t.claim(_scope(path)) is None
    assert t.claim(_scope("/", b"localhost:9000")) is None


class _Lambda:
    def __init__(self) -> None:
        self.calls = 0

    def fast_path(self, *args) -> bool:
        self.calls += 1
        return True


def test_fast_path_guard():
    lam = _Lambda()
    app = RootApp(lam, None, None, _triggers())  # type: ignore[arg-type]
    path = "/2015-03-31/functions/f/invocations"
    plain = [(b"host", b"127.0.0.1:9000")]
    assert app.fast_path("POST", path, b"", plain, b"{}", None) is True
    url_host = [(b"host", URL_ID.encode() + b".lambda-url.localhost:9000")]
    assert app.fast_path("POST", path, b"", url_host, b"{}", None) is False
    assert lam.calls == 1


class _Urls:
    def __init__(self, url) -> None:
        self.url = url

    def lookup(self, url_id: str):
        return self.url if url_id == URL_ID else None


class _Invoker:
    def __init__(self) -> None:
        self.requests = []

    async def invoke(self, request):
        from corral.invoke.service import InvokeOutcome
        from corral.model.invocation import InvocationResult

        self.requests.append(("invoke", request))
        return InvokeOutcome(200, "$LATEST", request.request_id, InvocationResult(b'"buffered"'))


def _serve(triggers: HttpTriggers, url_scope: dict) -> list[dict]:
    import asyncio

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    handler = triggers.claim(url_scope)
    asyncio.run(handler(url_scope, receive, send))
    return sent


def test_response_stream_urls_invoke_in_streaming_mode():
    """A RESPONSE_STREAM URL goes through invoke_stream (a BUFFERED one through invoke); a
    function that answered buffered still gets the payload 2.0 response rules."""
    from corral.invoke.streaming import InvokeStream
    from corral.model.function_url import FunctionUrl
    from corral.model.invocation import InvocationResult

    class _StreamingInvoker(_Invoker):
        async def invoke_stream(self, request):
            self.requests.append(("stream", request))
            stream = InvokeStream(request.request_id, "$LATEST")
            stream.finish(InvocationResult(b'{"statusCode": 202, "body": "streamed"}'))
            return stream

    url = FunctionUrl(URL_ID, "fn", None, "NONE", "t", "t", invoke_mode="RESPONSE_STREAM")
    invoker = _StreamingInvoker()
    triggers = HttpTriggers(_Urls(url), None, invoker, Scope())  # type: ignore[arg-type]
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/url/{URL_ID}/x",
        "raw_path": f"/url/{URL_ID}/x".encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:9000")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 9000),
    }
    sent = _serve(triggers, scope)
    assert sent[0]["status"] == 202 and sent[1]["body"] == b"streamed"
    assert [kind for kind, _ in invoker.requests] == ["stream"]
    triggers.urls = _Urls(url.replace(invoke_mode="BUFFERED"))
    sent = _serve(triggers, scope)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b'"buffered"'


def test_fast_path_guard_ignores_the_host_name_case():
    lam = _Lambda()
    app = RootApp(lam, None, None, _triggers())  # type: ignore[arg-type]
    path = "/2015-03-31/functions/f/invocations"
    upper = [(b"host", URL_ID.upper().encode() + b".LAMBDA-URL.localhost:9000")]
    assert app.fast_path("POST", path, b"", upper, b"{}", None) is False
    assert lam.calls == 0


def test_body_limit_is_the_invoke_payload_limit_at_the_front_door():
    from corral.http.server import MAX_BODY_BYTES
    from corral.model import limits

    app = RootApp(None, None, None, _triggers())  # type: ignore[arg-type]
    plain = [(b"host", b"127.0.0.1:9000")]
    url_host = [(b"host", URL_ID.encode() + b".lambda-url.localhost:9000")]
    six_mb = limits.SYNC_REQUEST_MAX_BYTES
    assert app.body_limit(f"/url/{URL_ID}/x", plain) == six_mb
    assert app.body_limit("/anything", url_host) == six_mb
    assert app.body_limit("/api/items", plain) == six_mb
    assert app.body_limit("/2015-03-31/functions", plain) == MAX_BODY_BYTES  # CreateFunction
