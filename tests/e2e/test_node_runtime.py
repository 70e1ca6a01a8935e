"""Node.js functions on Corral's own bootstrap: CommonJS and ES module handlers, async and
callback styles, the context object, and Lambda's error shapes."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid

import pytest

from tests.support import make_zip

ROLE = "arn:aws:iam::000000000000:role/x"


def _create(
    lam, files: dict[str, str | bytes], handler="index.handler", runtime="nodejs20.x", **kw
):
    name = f"node-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": make_zip(files)},
        **kw,
    )
    return name


def _invoke(lam, name: str, payload: object = None, **kw) -> tuple[dict, object]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kw)
    return response, json.loads(response["Payload"].read())


def _node_runtimes(corral_url: str) -> list[str]:
    with urllib.request.urlopen(f"{corral_url}/corral/v1/runtimes", timeout=5) as response:
        described = json.load(response)
    return [r for r, v in described.items() if r.startswith("nodejs") and "unavailable" not in v]


CONTEXT_APP = """
exports.handler = async (event, context) => {
  console.log('hello from', context.functionName);
  return {
    event,
    version: process.versions.node,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    arn: context.invokedFunctionArn,
    memory: context.memoryLimitInMB,
    requestId: context.awsRequestId,
    logGroup: context.logGroupName,
    logStream: context.logStreamName,
    left: context.getRemainingTimeInMillis(),
    waits: context.callbackWaitsForEmptyEventLoop,
    clientContext: context.clientContext,
    identity: context.identity === undefined ? null : context.identity,
    nodePath: process.env.NODE_PATH,
    handlerEnv: process.env._HANDLER,
  };
};
"""


def test_commonjs_handler_gets_the_event_and_context(lam, corral_url):
    runtimes = _node_runtimes(corral_url)
    assert "nodejs20.x" in runtimes
    for runtime in runtimes:
        name = _create(lam, {"index.js": CONTEXT_APP}, runtime=runtime, Timeout=7, MemorySize=256)
        client_context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
        response, body = _invoke(lam, name, {"a": [1, "x"]}, ClientContext=client_context)
        assert "FunctionError" not in response, body
        assert body["event"] == {"a": [1, "x"]}
        assert body["version"].split(".")[0] == runtime.removeprefix("nodejs").removesuffix(".x")
        assert body["functionName"] == name
        assert body["functionVersion"] == "$LATEST"
        assert body["arn"].endswith(f":function:{name}")
        assert body["memory"] == "256"
        assert len(body["requestId"]) == 36
        assert body["logGroup"] == f"/aws/lambda/{name}"
        assert body["logStream"]
        assert 0 < body["left"] <= 7000
        # Node.js 24 has no callback handlers, so no callbackWaitsForEmptyEventLoop
        assert body.get("waits") is (None if runtime == "nodejs24.x" else True)
        assert body["clientContext"]["custom"] == {"k": "v"}
        assert body["identity"] is None
        assert body["handlerEnv"] == "index.handler"
        assert body["nodePath"].split(":")[:2] == [
            f"/opt/nodejs/node{body['version'].split('.')[0]}/node_modules",
            "/opt/nodejs/node_modules",
        ]
        assert body["nodePath"].endswith(":/var/task")


FLAGS_APP = """
exports.handler = async () => ({
  execArgv: process.execArgv,
  requireModule: process.features.require_module,
});
exports.legacy = async (event, context) => ['succeed', 'fail', 'done'].filter((m) => m in context);
exports.callback = (event, context, callback) => callback(null, 'old style');
"""


def test_node_flags_follow_lambdas_and_a_users_node_options(lam, corral_url):
    runtimes = _node_runtimes(corral_url)
    for runtime in runtimes:
        major = int(runtime.removeprefix("nodejs").removesuffix(".x"))
        name = _create(lam, {"index.js": FLAGS_APP}, runtime=runtime, MemorySize=512)
        body = _invoke(lam, name)[1]
        assert "--max-old-space-size=504" in body["execArgv"]
        # Lambda disables require() of ES modules on 20 and 22, syntax detection on 22
        disabled = {20: ["--no-experimental-require-module"], 22: [
            "--no-experimental-require-module", "--no-experimental-detect-module"]}  # fmt: skip
        assert [a for a in body["execArgv"] if a.startswith("--no-")] == disabled.get(major, [])
        if major in (20, 22):
            assert body["requireModule"] is False
        # a user's heap size and re-enabled features win, as Lambda's bootstrap lets them
        options = "--max-old-space-size=300 --experimental-require-module"
        name = _create(
            lam, {"index.js": FLAGS_APP}, runtime=runtime, MemorySize=512,
            Environment={"Variables": {"NODE_OPTIONS": options}},
        )  # fmt: skip
        body = _invoke(lam, name)[1]
        assert not any("space-size" in a for a in body["execArgv"]), body
        assert "--no-experimental-require-module" not in body["execArgv"]
        assert body["requireModule"] is True


def test_nodejs24_refuses_callback_handlers_as_lambda_does(lam, corral_url):
    if "nodejs24.x" not in _node_runtimes(corral_url):
        pytest.skip("no Node.js 24 here")
    name = _create(lam, {"index.js": FLAGS_APP}, handler="index.callback", runtime="nodejs24.x")
    response, body = _invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.CallbackHandlerDeprecated"
    assert body["errorMessage"].startswith(
        "ERROR: AWS Lambda has removed support for callback-based function handlers starting "
        "with Node.js 24."
    )
    name = _create(lam, {"index.js": FLAGS_APP}, handler="index.legacy", runtime="nodejs24.x")
    assert _invoke(lam, name)[1] == []  # nor the legacy context methods
    name = _create(lam, {"index.js": FLAGS_APP}, handler="index.callback", runtime="nodejs22.x")
    assert _invoke(lam, name)[1] == "old style"


def test_console_lines_carry_the_request_id(lam):
    name = _create(lam, {"index.js": CONTEXT_APP})
    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    line = next(x for x in tail.splitlines() if "hello from" in x)
    stamp, request_id, level, message = line.split("\t")
    assert stamp.endswith("Z") and level == "INFO"
    assert request_id == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert message == f"hello from {name}"


def test_es_module_handlers(lam):
    mjs = "export const handler = async (event) => ({ kind: 'mjs', got: event });\n"
    name = _create(lam, {"app.mjs": mjs}, handler="app.handler")
    assert _invoke(lam, name, 1)[1] == {"kind": "mjs", "got": 1}
    # .js in a package whose package.json says "type": "module", in a subdirectory
    files = {
        "src/package.json": '{"type": "module"}',
        "src/main.js": (
            "import { helper } from './lib.js';\nexport const run = async () => helper();\n"
        ),
        "src/lib.js": "export const helper = () => ({ kind: 'esm-js' });\n",
    }
    name = _create(lam, files, handler="src/main.run")
    assert _invoke(lam, name)[1] == {"kind": "esm-js"}


def test_callback_handler_waits_for_the_event_loop(lam):
    app = """
let done = false;
exports.handler = (event, context, callback) => {
  if (event.second) return callback(null, { timerRan: done });
  setTimeout(() => { done = true; }, 30);
  callback(null, 'first');
};
"""
    name = _create(lam, {"index.js": app})
    assert _invoke(lam, name, {})[1] == "first"
    # the response to the first was held until its timer had run, as Lambda does
    assert _invoke(lam, name, {"second": True})[1] == {"timerRan": True}


def test_callback_need_not_wait_for_the_event_loop(lam):
    app = """
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => {}, 60000);  // would hold the answer past the timeout if waited for
  callback(null, 'answered');
};
"""
    name = _create(lam, {"index.js": app}, Timeout=2)
    assert _invoke(lam, name, {"wait": False})[1] == "answered"
    _, body = _invoke(lam, name, {"wait": True})
    assert body["errorType"] == "Sandbox.Timedout"


def test_a_handler_that_never_answers_returns_null_once_the_event_loop_drains(lam):
    # aws-lambda-ric posts null when Node's event loop drains before the handler answered;
    # a handler that still has work pending is waited for (here: its callback in a timer)
    app = """
exports.sync = function (event, context) { console.log('hi'); };
exports.pending = async () => new Promise(() => {});
exports.later = (event, context, callback) => { setTimeout(() => callback(null, 'later'), 20); };
"""
    for handler in ("index.sync", "index.pending"):
        name = _create(lam, {"index.js": app}, handler=handler, Timeout=5)
        for _ in range(2):  # the same runtime answers again
            response, body = _invoke(lam, name, {})
            assert "FunctionError" not in response, body
            assert body is None
    name = _create(lam, {"index.js": app}, handler="index.later")
    assert _invoke(lam, name, {})[1] == "later"


def test_a_callback_error_is_answered_without_waiting_for_the_event_loop(lam):
    app = """
exports.handler = (event, context, callback) => {
  setTimeout(() => {}, 60000);  // held past the timeout, were the error to wait for it
  callback(new RangeError('at once'));
};
"""
    name = _create(lam, {"index.js": app}, Timeout=2)
    for _ in range(2):
        response, body = _invoke(lam, name, {})
        assert response["FunctionError"] == "Unhandled"
        assert (body["errorType"], body["errorMessage"]) == ("RangeError", "at once")


def test_callback_error_and_thrown_errors(lam):
    app = """
class ValidationError extends Error { constructor(m) { super(m); this.name = 'ValidationError'; } }
exports.handler = async (event) => {
  if (event.kind === 'custom') throw new ValidationError('bad input');
  if (event.kind === 'string') throw 'just a string';
  throw new Error('boom');
};
exports.cb = (event, context, callback) => callback(new TypeError('via callback'));
"""
    name = _create(lam, {"index.js": app})
    response, body = _invoke(lam, name, {"kind": "plain"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Error"
    assert body["errorMessage"] == "boom"
    assert body["trace"][0] == "Error: boom"
    assert any("/var/task/index.js" in line for line in body["trace"])
    _, body = _invoke(lam, name, {"kind": "custom"})
    assert (body["errorType"], body["errorMessage"]) == ("ValidationError", "bad input")
    _, body = _invoke(lam, name, {"kind": "string"})
    assert body == {"errorType": "string", "errorMessage": "just a string", "trace": []}
    name = _create(lam, {"index.js": app}, handler="index.cb")
    _, body = _invoke(lam, name, {})
    assert (body["errorType"], body["errorMessage"]) == ("TypeError", "via callback")


def test_unhandled_rejection_fails_the_invocation_and_the_next_one_runs(lam):
    app = """
let calls = 0;
exports.handler = async (event) => {
  calls += 1;
  if (event.reject) {
    Promise.reject(new Error('nobody caught me'));
    await new Promise((r) => setTimeout(r, 1000));
  }
  return { calls };
};
"""
    name = _create(lam, {"index.js": app}, Timeout=5)
    response, body = _invoke(lam, name, {"reject": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert body["errorMessage"] == "Error: nobody caught me"
    # the runtime exited after reporting it: a fresh environment serves the next call
    response, body = _invoke(lam, name, {})
    assert "FunctionError" not in response, body
    assert body == {"calls": 1}
    # The same through InvokeWithResponseStream, right after the runtime reported it:
    # whether or not the exit is seen before the environment is handed out again, the
    # invocation runs (on a fresh environment) and its stream completes.
    response, body = _invoke(lam, name, {"reject": True})
    assert body["errorType"] == "Runtime.UnhandledPromiseRejection"
    events = list(lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}")["EventStream"])
    assert events[0]["PayloadChunk"]["Payload"] == b'{"calls":1}'
    assert events[-1] == {"InvokeComplete": {}}


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        ({"index.js": "exports.other = 1;"}, "missing.handler", "Runtime.ImportModuleError",
         "Error: Cannot find module 'missing'"),
        ({"index.js": "exports.other = 1;"}, "index.handler", "Runtime.HandlerNotFound",
         "index.handler is undefined or not exported"),
        ({"index.js": "exports.handler = 42;"}, "index.handler", "Runtime.HandlerNotFound",
         "index.handler is not a function"),
        ({"index.js": "exports.handler = async () => {;"}, "index.handler",
         "Runtime.UserCodeSyntaxError", "SyntaxError: "),
        ({"index.mjs": "export const handler = ) =>"}, "index.handler",
         "Runtime.UserCodeSyntaxError", "SyntaxError: "),
        ({"index.js": "require('not-installed');"}, "index.handler",
         "Runtime.ImportModuleError", "Error: Cannot find module 'not-installed'"),
        ({"index.js": "throw new RangeError('init failed');"}, "index.handler", "RangeError",
         "init failed"),
        ({"index.js": ""}, "index", "Runtime.MalformedHandlerName", "Bad handler"),
    ],
)  # fmt: skip
def test_init_errors_have_lambdas_types(lam, files, handler, error_type, message):
    name = _create(lam, files, handler=handler)
    response, body = _invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message)
    assert isinstance(body["trace"], list)


def test_bundled_node_modules_and_subdirectory_handlers(lam):
    files = {
        "node_modules/greeter/package.json": '{"name": "greeter", "main": "lib.js"}',
        "node_modules/greeter/lib.js": "module.exports = (n) => `hello ${n}`;",
        "handlers/api.js": "const g = require('greeter');\nexports.main = async (e) => g(e.who);",
    }
    name = _create(lam, files, handler="handlers/api.main")
    assert _invoke(lam, name, {"who": "corral"})[1] == "hello corral"


def test_timeout_kills_a_node_function(lam):
    app = "exports.handler = () => new Promise(() => setInterval(() => {}, 1000));\n"
    name = _create(lam, {"index.js": app}, Timeout=1)
    response, body = _invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")


def test_unserializable_result_is_an_error(lam):
    app = "exports.handler = async () => { const a = {}; a.self = a; return a; };\n"
    name = _create(lam, {"index.js": app})
    response, body = _invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == "Unable to stringify response body"


def test_nodejs18_is_refused_as_lambda_does(lam):
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
        _create(lam, {"index.js": CONTEXT_APP}, runtime="nodejs18.x")
    assert "nodejs18.x is no longer supported" in str(err.value)


def test_streamify_response_handlers_answer_a_buffered_invoke(lam):
    # awslambda.streamifyResponse, the global of Lambda's Node.js runtimes: the chunks go
    # to the Runtime API as a streaming response; a plain Invoke gets them all at once.
    app = """
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.fail) throw new Error('failed before writing');
  responseStream.setContentType('text/plain');
  responseStream.write('hello ');
  await new Promise((r) => setTimeout(r, 10));
  responseStream.write(context.functionName);
  responseStream.end();
});
"""
    name = _create(lam, {"index.mjs": app})
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in response
    assert response["Payload"].read() == f"hello {name}".encode()
    response, body = _invoke(lam, name, {"fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert (body["errorType"], body["errorMessage"]) == ("Error", "failed before writing")


STREAMING_APP = """
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.requestContext) {  // behind a function URL
    responseStream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201, headers: { 'x-node': 'yes' }, cookies: ['n=1'],
    });
  } else {
    responseStream.setContentType('text/plain');
  }
  responseStream.write('one,');
  responseStream.write('two');
  if (event.failLate) throw new TypeError('failed after writing');
  responseStream.end();
});
"""


def test_streamify_response_streams_through_invoke_with_response_stream(lam):
    name = _create(lam, {"index.mjs": STREAMING_APP})
    response = lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}")
    events = list(response["EventStream"])
    payload = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
    assert payload == b"one,two"
    assert events[-1] == {"InvokeComplete": {}}
    # An error after the first byte comes as the runtime's trailers: InvokeComplete says so.
    response = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"failLate": true}')
    events = list(response["EventStream"])
    complete = events[-1]["InvokeComplete"]
    assert complete["ErrorCode"] == "TypeError"
    assert complete["ErrorDetails"] == "failed after writing"


def test_http_response_stream_sets_a_function_url_s_status_and_headers(corral_url, lam):
    from tests.support import http_request

    name = _create(lam, {"index.mjs": STREAMING_APP})
    config = lam.create_function_url_config(
        FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM"
    )
    url_id = config["FunctionUrl"].removeprefix("http://").split(".", 1)[0]
    status, headers, body = http_request(
        corral_url,
        "POST",
        f"/url/{url_id}/",
        headers=[("Content-Type", "application/json")],
        body=b'{"http": true}',
    )
    assert status == 201, body
    assert ("x-node", "yes") in headers and ("set-cookie", "n=1") in headers
    assert body == b"one,two"
