"""Java functions on Corral's own Java runtime: RequestHandler, RequestStreamHandler and
`package.Class::method` handlers built with javac in the test, in a zip with lib/*.jar or as
a jar, JSON to and from POJOs, maps and strings, errors and timeouts."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from corral.fleet.runtimes import RUNTIMES_DIR

ROLE = "arn:aws:iam::000000000000:role/x"
INTERFACES = RUNTIMES_DIR / "java" / "src"

SOURCES = {
    "example/Hello.java": """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.Map;
public class Hello implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    static int calls = 0;
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        if (event.containsKey("fail")) {
            throw new IllegalStateException("bad state: " + event.get("fail"),
                new IllegalArgumentException("root cause"));
        }
        if (event.containsKey("sleep")) {
            try { Thread.sleep(60000); } catch (InterruptedException e) { }
        }
        context.getLogger().log("hello from java\\n");
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("event", event);
        out.put("calls", ++calls);
        out.put("java", System.getProperty("java.specification.version"));
        out.put("functionName", context.getFunctionName());
        out.put("version", context.getFunctionVersion());
        out.put("arn", context.getInvokedFunctionArn());
        out.put("requestId", context.getAwsRequestId());
        out.put("memory", context.getMemoryLimitInMB());
        out.put("left", context.getRemainingTimeInMillis());
        out.put("logGroup", context.getLogGroupName());
        out.put("helper", example.lib.Helper.greet("lib"));
        out.put("maxHeapMb", Runtime.getRuntime().maxMemory() / (1024 * 1024));
        return out;
    }
}
""",
    "example/lib/Helper.java": """
package example.lib;
public class Helper {
    public static String greet(String who) { return "hello " + who; }
}
""",
    "example/People.java": """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import java.util.List;
public class People {
    public static class Person {
        private String name;
        private int age;
        private List<String> tags;
        public String getName() { return name; }
        public void setName(String name) { this.name = name; }
        public int getAge() { return age; }
        public void setAge(int age) { this.age = age; }
        public List<String> getTags() { return tags; }
        public void setTags(List<String> tags) { this.tags = tags; }
    }
    public static class Greeting {
        public String message;
        public boolean adult;
        public Greeting(String message, boolean adult) {
            this.message = message;
            this.adult = adult;
        }
    }
    public Greeting greet(Person p, Context context) {
        return new Greeting("Hi " + p.getName() + " " + p.getTags(), p.getAge() >= 18);
    }
    public static String shout(String s) { return s.toUpperCase(); }
    public int twice(int n) { return 2 * n; }
}
""",
    "example/Streams.java": """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.*;
public class Streams implements RequestStreamHandler {
    public void handleRequest(InputStream in, OutputStream out, Context context)
            throws IOException {
        byte[] raw = in.readAllBytes();
        String fn = context.getFunctionName();
        out.write(("{\\"length\\": " + raw.length + ", \\"fn\\": \\"" + fn + "\\"}").getBytes());
    }
}
""",
    "example/Records.java": """
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.List;
// Lambda's own Java 17 example: records in and out
public class Records implements RequestHandler<Records.Order, Records.Receipt> {
    public record Item(String sku, int quantity) {}
    public record Order(String id, List<Item> items, double price) {}
    record Receipt(String orderId, int units, double total, boolean empty, byte[] raw) {}
    public Receipt handleRequest(Order order, Context context) {
        int units = 0;
        if (order.items() != null) for (Item i : order.items()) units += i.quantity();
        return new Receipt(order.id(), units, units * order.price(), units == 0,
            order.id() == null ? null : order.id().getBytes());
    }
}
""",
    "example/Broken.java": """
package example;
public class Broken {
    static { if (true) throw new RuntimeException("static init failed"); }
    public String handle(String s) { return s; }
}
""",
}


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("no javac on this host")
    root = tmp_path_factory.mktemp("java")
    src, out = root / "src", root / "classes"
    for rel, text in SOURCES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    # compiled against the aws-lambda-java-core interfaces that Corral's runtime provides
    sources = [str(p) for p in src.rglob("*.java")]
    subprocess.run(
        [javac, "--release", "17", "-sourcepath", str(INTERFACES), "-d", str(out), *sources],
        check=True,
        capture_output=True,
    )
    return out


def _jar(classes: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(classes.rglob("*.class")):
            rel = str(path.relative_to(classes))
            if rel.startswith(prefix):
                zf.write(path, rel)
    return buf.getvalue()


def _function_zip(classes: Path) -> bytes:
    """Lambda's layout: classes at the root, dependencies as lib/*.jar (here the helper
    library and the aws-lambda-java-core interfaces, as a Gradle or Maven build packs them)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(classes.rglob("*.class")):
            rel = str(path.relative_to(classes))
            if rel.startswith("example/") and not rel.startswith("example/lib/"):
                zf.write(path, rel)
        zf.writestr("lib/helper.jar", _jar(classes, "example/lib/"))
        zf.writestr("lib/aws-lambda-java-core.jar", _jar(classes, "com/amazonaws/"))
    return buf.getvalue()


def _create(lam, code: bytes, handler: str, runtime: str = "java17", **kw) -> str:
    name = f"java-{uuid.uuid4().hex[:10]}"
    lam.create_function(
        FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler, Code={"ZipFile": code}, **kw
    )
    return name


def _invoke(lam, name: str, payload: object) -> tuple[dict, object]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return response, json.loads(response["Payload"].read())


def _java_runtimes(corral_url: str) -> list[str]:
    with urllib.request.urlopen(f"{corral_url}/corral/v1/runtimes", timeout=5) as response:
        described = json.load(response)
    return [r for r, v in described.items() if r.startswith("java") and "unavailable" not in v]


def test_request_handler_with_lib_jars(lam, corral_url, classes):
    runtimes = _java_runtimes(corral_url)
    assert "java17" in runtimes
    assert "java21" in runtimes  # `make install` puts a Java 21 runtime from PyPI here
    for runtime in runtimes:
        name = _create(lam, _function_zip(classes), "example.Hello", runtime, MemorySize=256)
        response, body = _invoke(lam, name, {"k": [1, 2.5, "x"], "n": None})
        assert "FunctionError" not in response, body
        assert body["event"] == {"k": [1, 2.5, "x"], "n": None}
        assert body["java"] == runtime.removeprefix("java")
        assert body["functionName"] == name
        assert body["version"] == "$LATEST"
        assert body["arn"].endswith(f":function:{name}")
        assert len(body["requestId"]) == 36
        assert body["memory"] == 256
        assert 0 < body["left"] <= 3000
        assert body["logGroup"] == f"/aws/lambda/{name}"
        assert body["helper"] == "hello lib"
        assert body["maxHeapMb"] < 256  # the heap is sized from MemorySize, as in Lambda
        # the same JVM serves the next invocation
        assert _invoke(lam, name, {})[1]["calls"] == 2


def test_method_handlers_map_json_to_pojos_strings_and_primitives(lam, classes):
    code = _function_zip(classes)
    name = _create(lam, code, "example.People::greet")
    _, body = _invoke(lam, name, {"Name": "Ada", "age": 36, "tags": ["x", "y"], "extra": 1})
    assert body == {"message": "Hi Ada [x, y]", "adult": True}
    name = _create(lam, code, "example.People::shout")
    assert _invoke(lam, name, "quiet")[1] == "QUIET"
    name = _create(lam, code, "example.People::twice")
    assert _invoke(lam, name, 21)[1] == 42


def test_records_in_and_out(lam, classes):
    # a record is built through its canonical constructor (no no-argument constructor) and
    # written from its components; byte[] is a base64 string, as Jackson writes it
    name = _create(lam, _function_zip(classes), "example.Records")
    event = {"id": "o-1", "items": [{"sku": "a", "quantity": 2}, {"SKU": "b", "quantity": 3}],
             "price": 1.5, "extra": True}  # fmt: skip
    response, body = _invoke(lam, name, event)
    assert "FunctionError" not in response, body
    assert body == {"orderId": "o-1", "units": 5, "total": 7.5, "empty": False, "raw": "by0x"}
    # missing components are null, or a primitive's zero
    _, body = _invoke(lam, name, {})
    assert body == {"orderId": None, "units": 0, "total": 0.0, "empty": True, "raw": None}


def test_stream_handler_from_a_jar(lam, classes):
    # the deployment package may be a jar: a zip with the classes at its root
    name = _create(lam, _jar(classes, ""), "example.Streams")
    _, body = _invoke(lam, name, {"abc": 1})
    assert body == {"length": len(json.dumps({"abc": 1})), "fn": name}


@pytest.mark.parametrize("runtime", ["java17", "java21"])
def test_exceptions_have_lambdas_java_error_shape(lam, classes, runtime):
    name = _create(lam, _function_zip(classes), "example.Hello::handleRequest", runtime)
    response, body = _invoke(lam, name, {"fail": "x"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "java.lang.IllegalStateException"
    assert body["errorMessage"] == "bad state: x"
    assert body["stackTrace"][0].startswith("example.Hello.handleRequest(Hello.java:")
    assert body["cause"]["errorType"] == "java.lang.IllegalArgumentException"
    assert body["cause"]["errorMessage"] == "root cause"


def test_bad_input_is_lambdas_json_parsing_error(lam, classes):
    # the shape Lambda's Java developer guide shows ("AWS Lambda function errors in Java")
    name = _create(lam, _function_zip(classes), "example.People::twice")
    response, body = _invoke(lam, name, {"not": "a number"})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "java.lang.RuntimeException"
    assert body["errorMessage"] == "An error occurred during JSON parsing"
    assert body["stackTrace"] == []
    assert body["cause"]["errorType"] == "java.io.UncheckedIOException"
    assert body["cause"]["errorMessage"].startswith("java.io.IOException: Cannot deserialize")
    assert body["cause"]["cause"]["errorType"] == "java.io.IOException"


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("example.Missing", "java.lang.ClassNotFoundException", "Class not found: example.Missing"),
        ("example.People::nope", "java.lang.NoSuchMethodException",
         "No public method named nope with appropriate method signature found on class "
         "example.People"),
        ("example.People", "java.lang.NoSuchMethodException", "Class example.People does not "
         "implement RequestHandler"),
        ("example.Broken::handle", "java.lang.RuntimeException", "static init failed"),
    ],
)  # fmt: skip
def test_init_errors(lam, classes, handler, error_type, message):
    name = _create(lam, _function_zip(classes), handler)
    response, body = _invoke(lam, name, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message)


@pytest.mark.parametrize("runtime", ["java17", "java21"])
def test_timeout_kills_a_java_function(lam, classes, runtime):
    name = _create(lam, _function_zip(classes), "example.Hello", runtime, Timeout=2)
    response, body = _invoke(lam, name, {"sleep": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 2.00 seconds")


def test_runtimes_missing_here_are_refused_with_the_reason(lam, corral_url, classes):
    runtimes = _java_runtimes(corral_url)
    for runtime, why in (("java11", "no JDK 11"), ("dotnet8", "no .NET SDK")):
        if runtime in runtimes:
            continue
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
            _create(lam, _function_zip(classes), "example.Hello", runtime)
        assert f"The runtime parameter of {runtime} is not supported" in str(err.value)
        assert why in str(err.value)


def test_updating_to_a_runtime_missing_here_is_refused(lam, corral_url, classes):
    if "java11" in _java_runtimes(corral_url):
        pytest.skip("this host has a JDK 11")
    name = _create(lam, _function_zip(classes), "example.Hello")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as err:
        lam.update_function_configuration(FunctionName=name, Runtime="java11")
    assert "no JDK 11" in str(err.value)
    assert lam.get_function_configuration(FunctionName=name)["Runtime"] == "java17"


def test_class_path_includes_a_layers_java_lib(lam, classes):
    # Lambda puts /opt/java/lib/*.jar (a layer's jars) on the class path
    from botocore.exceptions import ClientError

    layer_zip = io.BytesIO()
    with zipfile.ZipFile(layer_zip, "w") as zf:
        zf.writestr("java/lib/helper.jar", _jar(classes, "example/lib/"))
    try:
        layer = lam.publish_layer_version(
            LayerName=f"helper-{uuid.uuid4().hex[:8]}", Content={"ZipFile": layer_zip.getvalue()}
        )
    except ClientError as exc:
        pytest.skip(f"this server has no layers: {exc}")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        for path in sorted(classes.rglob("*.class")):
            rel = str(path.relative_to(classes))
            if rel.startswith("example/") and not rel.startswith("example/lib/"):
                zf.write(path, rel)
    name = _create(lam, code.getvalue(), "example.Hello", Layers=[layer["LayerVersionArn"]])
    response, body = _invoke(lam, name, {})
    assert "FunctionError" not in response, body
    assert body["helper"] == "hello lib"
