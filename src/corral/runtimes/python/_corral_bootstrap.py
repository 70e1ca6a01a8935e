"""Corral's Python runtime: the loop inside an environment, shaped like awslambdaric's.

Owns: importing the handler, the Runtime API conversation, the context object, error
bodies, Lambda-style logging. Not: sandboxing, timeouts, START/END/REPORT lines (platform).
Run as `python3.X -S -u bootstrap.py`, cwd = code directory; reads AWS_LAMBDA_RUNTIME_API,
_HANDLER, LAMBDA_TASK_ROOT and the AWS_LAMBDA_* variables. Stdlib only, never `corral`.

Wire format: Runtime API 2018-06-01, HTTP/1.1 on one keep-alive TCP connection
(TCP_NODELAY), reconnecting when the server closed it; every answer has Content-Length.
  GET  /2018-06-01/runtime/invocation/next         -> 200, body = event, headers
       Lambda-Runtime-Aws-Request-Id, -Deadline-Ms (epoch ms), -Invoked-Function-Arn,
       -Trace-Id, and when present -Client-Context, -Cognito-Identity (JSON)
  POST /2018-06-01/runtime/invocation/{id}/response  body = JSON result        -> 202
  POST /2018-06-01/runtime/invocation/{id}/error     body = make_error(...),
       header Lambda-Runtime-Function-Error-Type                               -> 202
  POST /2018-06-01/runtime/init/error                same, requestId ""         -> 202

Import time here is cold-start time: at start this imports only C modules (posix,
_socket, _json), not os/socket/json (+15-25 ms measured here, mostly re, enum and
collections); `traceback`, `json` and `logging` load only on the paths that need them.
Running this file as a script compiles it at every start (~9 ms); its .pyc does not.
"""

import _json
import _socket
import posix
import sys
import time

_API = "/2018-06-01/runtime"
_NEXT = _API + "/invocation/next"
_INIT_ERROR = _API + "/init/error"

_REQUEST_ID = "lambda-runtime-aws-request-id"
_DEADLINE_MS = "lambda-runtime-deadline-ms"
_FUNCTION_ARN = "lambda-runtime-invoked-function-arn"
_TRACE_ID = "lambda-runtime-trace-id"
_CLIENT_CONTEXT = "lambda-runtime-client-context"
_COGNITO_IDENTITY = "lambda-runtime-cognito-identity"
_TENANT_ID = "lambda-runtime-aws-tenant-id"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

_LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S"
_JSON_DATEFMT = "%Y-%m-%dT%H:%M:%SZ"  # awslambdaric's JSON timestamps: seconds, UTC
# LogRecord attributes that are not `extra` fields of a JSON record (awslambdaric's list).
_RESERVED_FIELDS = frozenset(
    [
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "aws_request_id",
        "tenant_id",
        "_frame_type",
    ]
)
# awslambdaric writes non-ASCII as-is for these runtimes and \u-escapes it for older ones.
_UNESCAPED_JSON_RUNTIMES = {f"AWS_Lambda_python3.{minor}" for minor in range(12, 16)}


class Fault(Exception):
    """A failure the runtime reports with a `Runtime.*` type (awslambdaric's FaultException)."""

    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    MARSHAL_ERROR = "Runtime.MarshalError"
    CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, error_type: str, message: str, trace: list | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


class RuntimeApiGone(Exception):
    """The Runtime API refused or dropped a fresh connection, or broke the protocol."""


# --- environment: posix.environ is the dict os.environ wraps once `os` is imported ---


def getenv(name: str, default: str | None = None) -> str | None:
    value = posix.environ.get(name.encode())
    return default if value is None else value.decode("utf-8", "surrogateescape")


def setenv(name: str, value: str | None) -> None:
    os_module = sys.modules.get("os")
    if os_module is not None:
        if value is None:
            os_module.environ.pop(name, None)
        else:
            os_module.environ[name] = value
        return
    key = name.encode()
    if value is None:
        if posix.environ.pop(key, None) is not None:
            posix.unsetenv(key)
    else:
        posix.environ[key] = value.encode("utf-8", "surrogateescape")
        posix.putenv(key, posix.environ[key])


# --- JSON on the _json C accelerator, which json.loads/json.dumps use underneath ---


class _DecodeOptions:
    """The attributes _json's scanner reads (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "-Infinity": float("-inf"),
        "Infinity": float("inf"),
        "NaN": float("nan"),
    }.__getitem__


_scan_once = _json.make_scanner(_DecodeOptions())
_WHITESPACE = " \t\n\r"


def json_loads(data: bytes):
    """json.loads(data) for UTF-8 input; anything else goes to the json module itself,
    which gives the canonical error message or handles the rare encoding (UTF-16, BOM)."""
    try:
        text = data.decode()
        value, end = _scan_once(text, len(text) - len(text.lstrip(_WHITESPACE)))
    except (ValueError, StopIteration, SystemError):
        # Bad input. The scanner raises JSONDecodeError only if json.decoder is loaded
        # (3.11 gives SystemError otherwise), so the json module re-parses and words it.
        return _json_module_loads(data)
    if text[end:].strip(_WHITESPACE):
        return _json_module_loads(data)
    return value


def _json_module_loads(data: bytes):
    import json

    return json.loads(data)


class _RawJSON(str):
    """Text emitted verbatim: a Decimal's digits, as awslambdaric's encoder writes them."""


class _DecimalSeen(Exception):
    pass


def _reject(obj):
    if _is_decimal(obj):
        raise _DecimalSeen
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _decimal_as_raw(obj):
    if _is_decimal(obj):
        return float("nan") if obj.is_nan() else _RawJSON(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _is_decimal(obj) -> bool:
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(obj, decimal.Decimal)


def json_dumps(obj, ensure_ascii: bool = True) -> bytes:
    """json.dumps(obj, allow_nan=True) as UTF-8, plus Decimal written exactly (str(d))."""
    escape = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    try:
        chunks = _make_encoder(_reject, escape)(obj, 0)
    except _DecimalSeen:
        # A Python string encoder makes _json emit its return value as is: slower, so
        # only for payloads that hold a Decimal.
        def escape_or_raw(text):
            return text if type(text) is _RawJSON else escape(text)

        chunks = _make_encoder(_decimal_as_raw, escape_or_raw)(obj, 0)
    return "".join(chunks).encode("utf-8")


def _make_encoder(default, escape):
    # json.JSONEncoder's arguments: markers (fresh, for the circular-reference check),
    # default, escape, indent, key and item separators, sort_keys, skipkeys, allow_nan.
    return _json.make_encoder({}, default, escape, None, ": ", ", ", False, False, True)


# --- the Runtime API client: hand-written HTTP/1.1, because http.client costs ~17 ms ---


class RuntimeClient:
    """One persistent connection to the Runtime API. Calls block; GET /next long-polls."""

    def __init__(self, address: str, ensure_ascii: bool = True):
        host, _, port = address.rpartition(":")
        self._family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        self._address = (host.strip("[]"), int(port))
        self._host_header = address
        self._ensure_ascii = ensure_ascii
        self._next_request = f"GET {_NEXT} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
        self._sock = None
        self._buf = bytearray()
        self._next_sent = False

    def next_invocation(self) -> "Invocation":
        if self._next_sent:  # pipelined behind the last answer: only its response is due
            self._next_sent = False
            try:
                status, headers, body = self._read_response()
            except (OSError, _ClosedBeforeResponse):
                self.close()
                status, headers, body = self._exchange(self._next_request)
        else:
            status, headers, body = self._exchange(self._next_request)
        if status != 200:
            raise RuntimeApiGone(f"GET /next answered {status}: {body[:200]!r}")
        return Invocation(headers, body)

    def post_response(self, request_id: str, body: bytes, content_type: str) -> None:
        path = f"{_API}/invocation/{request_id}/response"
        self._post(path, body, content_type, then_next=True)

    def post_error(self, request_id: str, error: dict) -> None:
        path = f"{_API}/invocation/{request_id}/error"
        self._post(path, self.dumps(error), "application/json", error["errorType"], True)

    def post_init_error(self, error: dict) -> None:
        self._post(_INIT_ERROR, self.dumps(error), "application/json", error["errorType"])

    def dumps(self, obj) -> bytes:
        return json_dumps(obj, self._ensure_ascii)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buf = bytearray()
        self._next_sent = False

    def _post(self, path, body, content_type, error_type=None, then_next=False) -> None:
        """POST an answer. With `then_next`, GET /next goes out in the same write (HTTP
        pipelining): one syscall and one wake-up fewer on each side per invocation."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        )
        if error_type:
            head += f"{_ERROR_TYPE_HEADER}: {error_type}\r\n"
        request = (head + "\r\n").encode() + body
        if then_next:
            request += self._next_request
        flush_output()  # the function's output must reach the pipe before its answer
        status, _, answer = self._exchange(request)
        self._next_sent = then_next and self._sock is not None
        if not 200 <= status < 300:
            # The platform rejected the answer (unknown id, too large...) and knows it.
            sys.stderr.write(f"Runtime API refused POST {path}: {status} {answer[:200]!r}\n")

    def _exchange(self, request: bytes):
        """Send one request, read its response; retry once if a reused connection died."""
        while True:
            fresh = self._sock is None
            if fresh:
                self._connect()
            try:
                self._sock.sendall(request)
                return self._read_response()
            except (OSError, _ClosedBeforeResponse) as e:
                self.close()
                if fresh:
                    raise RuntimeApiGone(f"connection lost: {e!r}") from None

    def _connect(self) -> None:
        sock = _socket.socket(self._family, _socket.SOCK_STREAM, _socket.IPPROTO_TCP)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(self._address)
        except OSError as e:
            sock.close()
            raise RuntimeApiGone(f"cannot connect to {self._host_header}: {e}") from None
        self._sock = sock

    def _read_response(self):
        end = self._buf.find(b"\r\n\r\n")
        while end < 0:
            self._buf += self._recv(bool(self._buf))
            end = self._buf.find(b"\r\n\r\n")
        lines = self._buf[:end].decode("utf-8", "surrogateescape").split("\r\n")
        del self._buf[: end + 4]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        closing = headers.get("connection", "").lower() == "close"
        length = headers.get("content-length")
        if length is None and closing:
            while chunk := self._sock.recv(65536):
                self._buf += chunk
            length = len(self._buf)
        body = self._read_body(int(length or 0))
        if closing:
            self.close()
        return status, headers, body

    def _read_body(self, length: int) -> bytes:
        if len(self._buf) >= length:
            body = bytes(self._buf[:length])
            del self._buf[:length]
            return body
        body = bytearray(length)  # large events: receive in place, no re-copying
        have = len(self._buf)
        body[:have] = self._buf
        self._buf.clear()
        view = memoryview(body)[have:]
        while view:
            received = self._sock.recv_into(view)
            if not received:
                raise RuntimeApiGone("connection closed in the middle of a response")
            view = view[received:]
        return bytes(body)

    def _recv(self, mid_response: bool) -> bytes:
        chunk = self._sock.recv(65536)
        if chunk:
            return chunk
        if mid_response:
            raise RuntimeApiGone("connection closed in the middle of a response")
        raise _ClosedBeforeResponse("connection closed")


class _ClosedBeforeResponse(Exception):
    """EOF before any byte of a response: on a reused connection, safe to retry."""


class Invocation:
    """One GET /next answer: the event bytes and the headers the context is built from."""

    def __init__(self, headers: dict, body: bytes):
        self.request_id = headers.get(_REQUEST_ID, "")
        self.deadline_ms = int(headers.get(_DEADLINE_MS) or 0)
        self.invoked_function_arn = headers.get(_FUNCTION_ARN)
        self.trace_id = headers.get(_TRACE_ID)
        self.client_context = headers.get(_CLIENT_CONTEXT)
        self.cognito_identity = headers.get(_COGNITO_IDENTITY)
        self.tenant_id = headers.get(_TENANT_ID)
        self.body = body


# --- the context object handed to the handler (awslambdaric's lambda_context.py) ---


class FunctionConfig:
    """What the platform tells the environment about its function, read once at start."""

    def __init__(self):
        self.function_name = getenv("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = getenv("AWS_LAMBDA_FUNCTION_VERSION")
        # A string, as awslambdaric gives it (it reads the variable unconverted).
        self.memory_limit_in_mb = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = getenv("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = getenv("AWS_LAMBDA_LOG_STREAM_NAME")


class LambdaContext:
    def __init__(self, invocation: Invocation, config: FunctionConfig):
        self.aws_request_id = invocation.request_id
        self.invoked_function_arn = invocation.invoked_function_arn
        self.tenant_id = invocation.tenant_id
        self.function_name = config.function_name
        self.function_version = config.function_version
        self.memory_limit_in_mb = config.memory_limit_in_mb
        self.log_group_name = config.log_group_name
        self.log_stream_name = config.log_stream_name
        self.identity = CognitoIdentity(
            _header_json(invocation.cognito_identity, "Cognito Identity")
        )
        client_context = _header_json(invocation.client_context, "Client Context")
        self.client_context = None if client_context is None else ClientContext(client_context)
        self._deadline_ms = invocation.deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg) -> None:
        sys.stdout.write(str(msg))


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity: dict | None):
        identity = identity or {}
        self.cognito_identity_id = identity.get("cognitoIdentityId")
        self.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, context: dict):
        client = context.get("client")
        self.client = None if client is None else Client(client)
        self.custom = context.get("custom")
        self.env = context.get("env")


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, client: dict):
        for field in self.__slots__:
            setattr(self, field, client.get(field))


def _header_json(value: str | None, what: str):
    if not value:
        return None
    try:
        return json_loads(value.encode("utf-8", "surrogateescape"))
    except Exception as e:
        raise Fault(Fault.CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {what} JSON: {e}") from None


# --- loading the handler: the Runtime.* init errors, worded as awslambdaric words them ---


def load_handler(handler: str):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise Fault(Fault.MALFORMED_HANDLER_NAME, f"Bad handler '{handler}': {e}") from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            Fault.BUILT_IN_MODULE_CONFLICT,
            f"Cannot use built-in module {modname} as a handler module",
        )
    dotted = modname.replace("/", ".")
    try:
        __import__(dotted)
        module = sys.modules[dotted]
    except ImportError as e:
        message = f"Unable to import module '{modname}': {e}"
        raise Fault(Fault.IMPORT_MODULE_ERROR, message) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        message = f"Syntax error in module '{modname}': {e}"
        raise Fault(Fault.USER_CODE_SYNTAX_ERROR, message, trace) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        message = f"Handler '{fname}' missing on module '{modname}'"
        raise Fault(Fault.HANDLER_NOT_FOUND, message) from None


# --- error bodies and their log lines ---


def make_error(message: str, error_type: str, trace: list | None, request_id: str = "") -> dict:
    """The body of every /error POST, as Lambda returns it to the caller."""
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": trace or [],
    }


def error_from_exception(exc: BaseException, request_id: str = "") -> dict:
    if isinstance(exc, Fault):
        return make_error(exc.message, exc.error_type, exc.trace, request_id)
    return make_error(str(exc), type(exc).__name__, _user_frames(exc), request_id)


def _user_frames(exc: BaseException) -> list:
    import traceback  # error path only: it pulls in linecache, tokenize and re

    frames = traceback.extract_tb(exc.__traceback__)
    skip = 0
    while skip < len(frames) and frames[skip].filename == _BOOTSTRAP_FILE:
        skip += 1
    # 4-tuples as awslambdaric passes them, so 3.11+ adds no ^^^ position lines.
    return traceback.format_list([(f.filename, f.lineno, f.name, f.line) for f in frames[skip:]])


def log_error(error: dict) -> None:
    """`[ERROR] Type: message`, then the trace, like awslambdaric's text log_error; with
    the JSON log format one JSON line with the error's fields, as awslambdaric writes it."""
    if _json_format():
        stamp = time.strftime(_JSON_DATEFMT, time.gmtime())
        line = json_dumps({"timestamp": stamp, "level": "ERROR", **error}, ensure_ascii=False)
        sys.stderr.write(line.decode() + "\n")
        return
    description = "[ERROR]"
    if error["errorType"]:
        description += " " + error["errorType"] + (":" if error["errorMessage"] else "")
    if error["errorMessage"]:
        description += " " + error["errorMessage"]
    lines = [description, "Traceback (most recent call last):"]
    for element in error["stackTrace"]:
        lines.extend(element.splitlines() or [""])
    sys.stderr.write("\n".join(lines) + "\n")


def _json_format() -> bool:
    return (getenv("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            continue  # the function replaced or closed the stream; nothing to flush


# --- logging: set up the way Lambda's runtime does, but only if the function uses it ---


class LambdaLogging:
    """Root-logger handler with Lambda's text format and the current request id.

    Lambda configures logging before user code runs, so a user's logging.basicConfig()
    does nothing there. `import logging` costs more than starting the interpreter, so
    instead a meta-path finder waits for the function's own `import logging` and
    configures logging right after it loads.
    """

    def __init__(self, log_level: str | None, json_format: bool = False):
        self.request_id = ""
        self.ready = False
        level = (log_level or "").upper()
        self._log_level = "DEBUG" if level == "TRACE" else level  # as awslambdaric maps it
        self._json_format = json_format

    def watch_import(self) -> None:
        if "logging" in sys.modules:
            self.install(sys.modules["logging"])
        else:
            sys.meta_path.insert(0, _AfterImport("logging", self.install))

    def install(self, logging) -> None:
        if self.ready:
            return
        self.ready = True
        logging.Formatter.converter = time.gmtime  # as awslambdaric: log times are UTC

        class Handler(logging.StreamHandler):
            terminator = ""  # the format ends with "\n"

            def format(self, record):
                text = super().format(record)
                return text if text.endswith("\n") else text + "\n"

        handler = Handler(sys.stdout)
        if self._json_format:
            handler.setFormatter(_json_formatter(logging)())
        else:
            handler.setFormatter(logging.Formatter(_LOG_FORMAT, _LOG_DATEFMT))
        handler.addFilter(self._stamp)
        root = logging.getLogger()
        root.addHandler(handler)
        if isinstance(logging.getLevelName(self._log_level), int):
            root.setLevel(self._log_level)

    def _stamp(self, record) -> bool:
        record.aws_request_id = self.request_id
        return True


def _json_formatter(logging):
    """awslambdaric's JsonFormatter: one JSON object per record, None fields left out,
    `extra` attributes added. Built only once the function has imported logging."""
    import json  # JSON log format only, and only once logging is in use

    encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    class JsonFormatter(logging.Formatter):
        def __init__(self):
            super().__init__(datefmt=_JSON_DATEFMT)

        def format(self, record):
            record.levelno = min(50, max(0, record.levelno)) // 10 * 10
            record.levelname = logging.getLevelName(record.levelno)
            exc_info = record.exc_info
            message = record.msg
            if not (isinstance(message, dict) and not record.args):
                message = record.getMessage()
            result = {
                "timestamp": self.formatTime(record, self.datefmt),
                "level": record.levelname,
                "message": message,
                "logger": record.name,
                "stackTrace": _format_tb(exc_info[2]) if exc_info else None,
                "errorType": exc_info[0].__name__ if exc_info else None,
                "errorMessage": str(exc_info[1]) if exc_info else None,
                "requestId": getattr(record, "aws_request_id", None),
                "location": (
                    f"{record.pathname}:{record.funcName}:{record.lineno}" if exc_info else None
                ),
            }
            for key, value in record.__dict__.items():
                if key not in _RESERVED_FIELDS and key not in result:
                    result[key] = value
            return encode({k: v for k, v in result.items() if v is not None}) + "\n"

    return JsonFormatter


def _format_tb(tb) -> list:
    import traceback

    return traceback.format_tb(tb)


class _AfterImport:
    """Meta-path finder that calls `then(module)` once `name` has been loaded."""

    def __init__(self, name: str, then):
        self._name = name
        self._then = then

    def find_spec(self, name, path=None, target=None):
        if name != self._name:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(name, path, target) if find_spec else None
            if spec is not None:
                spec.loader = _LoaderThen(spec.loader, self._then)
                return spec
        return None


class _LoaderThen:
    def __init__(self, loader, then):
        self._loader = loader
        self._then = then

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._then(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


# --- the loop (awslambdaric's bootstrap.run) ---


def handle(client: RuntimeClient, handler, invocation: Invocation, config: FunctionConfig):
    """Run one invocation and POST its response or error."""
    request_id = invocation.request_id
    try:
        context = LambdaContext(invocation, config)
        event = _unmarshal(invocation.body)
        result = handler(event, context)
        body, content_type = _marshal(client, result)
    except Exception as e:
        error = error_from_exception(e, request_id)
        log_error(error)
        client.post_error(request_id, error)
    else:
        client.post_response(request_id, body, content_type)


def _unmarshal(body: bytes):
    if not body:
        return {}
    try:
        return json_loads(body)
    except Exception as e:
        raise Fault(Fault.UNMARSHAL_ERROR, f"Unable to unmarshal input: {e}") from None


def _marshal(client: RuntimeClient, result):
    if isinstance(result, bytes):
        return result, "application/unknown"
    try:
        return client.dumps(result), "application/json"
    except Exception as e:
        raise Fault(Fault.MARSHAL_ERROR, f"Unable to marshal response: {e}") from None


def run(client: RuntimeClient, handler_name: str, config: FunctionConfig, logs: LambdaLogging):
    logs.watch_import()
    try:
        handler = load_handler(handler_name)
    except Exception as e:
        error = error_from_exception(e)
        log_error(error)
        client.post_init_error(error)
        sys.exit(1)
    while True:
        invocation = client.next_invocation()
        logs.request_id = invocation.request_id
        setenv("_X_AMZN_TRACE_ID", invocation.trace_id)
        if not logs.ready and "logging" in sys.modules:
            logs.install(sys.modules["logging"])  # loaded behind our finder's back
        handle(client, handler, invocation, config)


def _layer_paths(opt_root: str) -> list:
    """Lambda's layer directories for Python, in its order: `python/lib/pythonX.Y/
    site-packages`, then `python` (those that exist: a missing entry costs a stat on every
    import that misses)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    found = []
    for path in (f"{opt_root}/python/lib/{version}/site-packages", f"{opt_root}/python"):
        try:
            posix.stat(path)
        except OSError:
            continue
        found.append(path)
    return found


def _set_sys_path(task_root: str, opt_root: str = "/opt") -> None:
    """Task root first, then the layers' directories (as Lambda's own bootstrap orders
    them), and not the bootstrap's own directory (sys.path[0] for a script, unless -P/-I
    made it safe)."""
    rest = sys.path if getattr(sys.flags, "safe_path", False) else sys.path[1:]  # 3.11+
    first = [task_root, *_layer_paths(opt_root)]
    sys.path[:] = [*first, *(p for p in rest if p not in first)]


def main() -> None:
    address = getenv("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.exit("corral bootstrap: AWS_LAMBDA_RUNTIME_API is not set")
    _set_sys_path(getenv("LAMBDA_TASK_ROOT") or posix.getcwd(), getenv("CORRAL_OPT_DIR", "/opt"))
    ensure_ascii = getenv("AWS_EXECUTION_ENV") not in _UNESCAPED_JSON_RUNTIMES
    client = RuntimeClient(address, ensure_ascii)
    logs = LambdaLogging(getenv("AWS_LAMBDA_LOG_LEVEL"), _json_format())
    try:
        run(client, getenv("_HANDLER", ""), FunctionConfig(), logs)
    except RuntimeApiGone as e:
        sys.stderr.write(f"corral bootstrap: Runtime API gone, exiting ({e})\n")
        sys.exit(2)


# The name tracebacks give this file's frames (also when it runs from a .pyc).
_BOOTSTRAP_FILE = main.__code__.co_filename

if __name__ == "__main__":
    main()
