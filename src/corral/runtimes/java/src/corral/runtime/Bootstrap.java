package corral.runtime;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Corral's Java runtime: the loop inside an environment, shaped like Lambda's own.
 *
 * <p>Owns: the class path ({@code /var/task}, {@code /var/task/lib/*.jar}, {@code
 * $CORRAL_OPT_DIR/java/lib/*.jar}, /opt by default), loading the handler ({@code
 * package.Class::method} or {@code package.Class} implementing RequestHandler /
 * RequestStreamHandler), JSON to and from the handler's types, the Context, Lambda's error
 * bodies ({errorMessage, errorType, stackTrace, cause}). Not: sandboxing, timeouts, the
 * START/END/REPORT lines. The Runtime API is spoken over one raw keep-alive socket:
 * HttpURLConnection would load ~200 classes at every cold start.
 */
public final class Bootstrap {
    private static final String API = "/2018-06-01/runtime";
    private static final PrintStream OUT = System.out;

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("--warm-up")) {
            warmUp();
            return;
        }
        Map<String, String> env = System.getenv();
        RuntimeApi api = new RuntimeApi(env.get("AWS_LAMBDA_RUNTIME_API"));
        Handler handler;
        try {
            handler = Handler.load(env.getOrDefault("_HANDLER", ""), classLoader(env));
        } catch (Throwable t) {
            Map<String, Object> body = errorBody(t);
            OUT.println(Json.write(body));
            api.post(API + "/init/error", Json.write(body), (String) body.get("errorType"));
            System.exit(1);
            return;
        }
        while (true) {
            RuntimeApi.Answer next = api.get(API + "/invocation/next");
            String requestId = next.header("lambda-runtime-aws-request-id");
            String trace = next.header("lambda-runtime-trace-id");
            if (trace != null) System.setProperty("com.amazonaws.xray.traceHeader", trace);
            LambdaContext context = new LambdaContext(env, next);
            byte[] result;
            try {
                result = handler.invoke(next.body, context);
            } catch (Throwable t) {
                Map<String, Object> body = errorBody(t);
                String json = Json.write(body);
                OUT.println(json);
                api.post(API + "/invocation/" + requestId + "/error", json, (String) body.get("errorType"));
                continue;
            }
            api.post(API + "/invocation/" + requestId + "/response", result, null);
        }
    }

    /** Loads the classes of a first invocation, for the class data sharing archive. */
    private static void warmUp() throws Exception {
        Object parsed = Json.parse("{\"a\":[1,2.5,\"x\\n\",true,null],\"b\":{\"c\":\"d\"}}");
        Json.write(parsed);
        Json.convert(parsed, Map.class);
        errorBody(new IllegalStateException("warm-up", new RuntimeException()));
        new LambdaContext(System.getenv(), new RuntimeApi.Answer()).getRemainingTimeInMillis();
        new URLClassLoader(new URL[] {new File(".").toURI().toURL()}, Bootstrap.class.getClassLoader()).close();
        Handler.class.getDeclaredMethods();
    }

    // ---- the class path -------------------------------------------------------------------

    static ClassLoader classLoader(Map<String, String> env) throws IOException {
        String task = env.getOrDefault("LAMBDA_TASK_ROOT", System.getProperty("user.dir"));
        String opt = env.getOrDefault("CORRAL_OPT_DIR", "/opt");
        List<URL> urls = new ArrayList<>();
        urls.add(new File(task).toURI().toURL());
        addJars(urls, new File(task, "lib"));
        addJars(urls, new File(opt, "java/lib"));
        return new URLClassLoader(urls.toArray(new URL[0]), Bootstrap.class.getClassLoader());
    }

    private static void addJars(List<URL> urls, File dir) throws IOException {
        File[] jars = dir.listFiles((d, name) -> name.endsWith(".jar"));
        if (jars == null) return;
        Arrays.sort(jars);
        for (File jar : jars) urls.add(jar.toURI().toURL());
    }

    // ---- errors -------------------------------------------------------------------------

    static Map<String, Object> errorBody(Throwable t) {
        Map<String, Object> body = new LinkedHashMap<>();
        if (t instanceof Fault) {
            body.put("errorMessage", t.getMessage());
            body.put("errorType", ((Fault) t).type);
        } else {
            body.put("errorMessage", t.getMessage() != null ? t.getMessage() : t.toString());
            body.put("errorType", t.getClass().getName());
        }
        List<String> trace = new ArrayList<>();
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().startsWith("corral.runtime.")) break; // our frames: not the user's
            if (e.getClassName().startsWith("jdk.internal.reflect.")) break;
            trace.add(e.toString());
        }
        body.put("stackTrace", trace);
        if (t.getCause() != null && t.getCause() != t) body.put("cause", errorBody(t.getCause()));
        return body;
    }

    /** A failure reported with a type of its own rather than an exception class name. */
    static final class Fault extends RuntimeException {
        final String type;

        Fault(String type, String message, Throwable cause) {
            super(message, cause);
            this.type = type;
        }
    }

    // ---- the handler --------------------------------------------------------------------

    abstract static class Handler {
        abstract byte[] invoke(byte[] event, Context context) throws Throwable;

        static Handler load(String spec, ClassLoader loader) throws Throwable {
            String className = spec;
            String methodName = null;
            int sep = spec.indexOf("::");
            if (sep >= 0) {
                className = spec.substring(0, sep);
                methodName = spec.substring(sep + 2);
            }
            if (className.isEmpty() || (methodName != null && methodName.isEmpty())) {
                throw new Fault("Runtime.MalformedHandlerName", "Invalid handler: " + spec, null);
            }
            Class<?> cls;
            try {
                cls = Class.forName(className, true, loader);
            } catch (ClassNotFoundException | NoClassDefFoundError e) {
                throw new Fault("java.lang.ClassNotFoundException", "Class not found: " + className, e);
            } catch (ExceptionInInitializerError e) {
                throw e.getCause() != null ? e.getCause() : e;
            }
            if (methodName == null) {
                if (RequestStreamHandler.class.isAssignableFrom(cls)) {
                    RequestStreamHandler h = (RequestStreamHandler) instance(cls);
                    return new Handler() {
                        @Override
                        byte[] invoke(byte[] event, Context context) throws Throwable {
                            ByteArrayOutputStream out = new ByteArrayOutputStream();
                            h.handleRequest(new ByteArrayInputStream(event), out, context);
                            return out.toByteArray();
                        }
                    };
                }
                if (!RequestHandler.class.isAssignableFrom(cls)) {
                    throw new Fault("java.lang.NoSuchMethodException",
                            "Class " + className + " does not implement RequestHandler with concrete type parameters", null);
                }
                methodName = "handleRequest";
            }
            return reflective(cls, methodName);
        }

        private static Object instance(Class<?> cls) throws Throwable {
            try {
                java.lang.reflect.Constructor<?> ctor = cls.getDeclaredConstructor();
                ctor.setAccessible(true);
                return ctor.newInstance();
            } catch (NoSuchMethodException e) {
                throw new Fault("java.lang.NoSuchMethodException",
                        "Class " + cls.getName() + " has no public zero-argument constructor", e);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        }

        /** Lambda's choice among same-named methods: the most parameters, (I, Context) over (I). */
        private static Handler reflective(Class<?> cls, String name) throws Throwable {
            Method best = null;
            for (Method m : cls.getMethods()) {
                if (!m.getName().equals(name) || m.isBridge() || m.isSynthetic()) continue;
                int n = m.getParameterCount();
                Class<?>[] p = m.getParameterTypes();
                boolean ok = n <= 1
                        || (n == 2 && p[1] == Context.class)
                        || (n == 2 && p[0] == InputStream.class && p[1] == OutputStream.class)
                        || (n == 3 && p[0] == InputStream.class && p[1] == OutputStream.class && p[2] == Context.class);
                if (!ok) continue;
                if (best == null || n > best.getParameterCount()
                        || (n == best.getParameterCount() && best.getParameterTypes()[0] == Object.class)) {
                    best = m;
                }
            }
            if (best == null) {
                throw new Fault("java.lang.NoSuchMethodException",
                        "No public method named " + name + " with appropriate method signature found on class " + cls.getName(), null);
            }
            Method method = best;
            method.setAccessible(true);
            Object target = Modifier.isStatic(method.getModifiers()) ? null : instance(cls);
            Class<?>[] params = method.getParameterTypes();
            boolean stream = params.length >= 2 && params[0] == InputStream.class && params[1] == OutputStream.class;
            Type input = params.length > 0 && !stream ? inputType(cls, method) : null;
            boolean voidResult = method.getReturnType() == void.class;
            return new Handler() {
                @Override
                byte[] invoke(byte[] event, Context context) throws Throwable {
                    Object[] args = new Object[params.length];
                    ByteArrayOutputStream out = null;
                    if (stream) {
                        out = new ByteArrayOutputStream();
                        args[0] = new ByteArrayInputStream(event);
                        args[1] = out;
                        if (params.length == 3) args[2] = context;
                    } else {
                        if (params.length >= 1) args[0] = deserialize(event, input);
                        if (params.length == 2) args[1] = context;
                    }
                    Object result;
                    try {
                        result = method.invoke(target, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                    if (stream) return out.toByteArray();
                    return (voidResult ? "null" : Json.write(result)).getBytes(StandardCharsets.UTF_8);
                }
            };
        }

        /** The declared input type; for RequestHandler, its bound type argument I. */
        private static Type inputType(Class<?> cls, Method method) {
            Type declared = method.getGenericParameterTypes()[0];
            if (declared != Object.class || !method.getName().equals("handleRequest")) return declared;
            for (Class<?> c = cls; c != null; c = c.getSuperclass()) {
                for (Type t : c.getGenericInterfaces()) {
                    if (t instanceof ParameterizedType && ((ParameterizedType) t).getRawType() == RequestHandler.class) {
                        return ((ParameterizedType) t).getActualTypeArguments()[0];
                    }
                }
            }
            return declared;
        }

        private static Object deserialize(byte[] event, Type type) {
            if (type == InputStream.class) return new ByteArrayInputStream(event);
            if (type == byte[].class) return event;
            try {
                return Json.convert(Json.parse(new String(event, StandardCharsets.UTF_8)), type);
            } catch (Json.ParseException e) {
                // Lambda's shape: a RuntimeException caused by the serializer's
                // UncheckedIOException, caused by the parser's own exception
                throw new RuntimeException("An error occurred during JSON parsing",
                        new java.io.UncheckedIOException(new java.io.IOException(e.getMessage())));
            }
        }
    }

    // ---- the context --------------------------------------------------------------------

    static final class LambdaContext implements Context {
        private final Map<String, String> env;
        private final String requestId;
        private final String arn;
        private final long deadline;
        private final Map<?, ?> clientContext;
        private final Map<?, ?> identity;

        LambdaContext(Map<String, String> env, RuntimeApi.Answer next) {
            this.env = env;
            this.requestId = next.header("lambda-runtime-aws-request-id");
            this.arn = next.header("lambda-runtime-invoked-function-arn");
            String deadlineMs = next.header("lambda-runtime-deadline-ms");
            this.deadline = deadlineMs == null ? 0 : Long.parseLong(deadlineMs);
            this.clientContext = jsonHeader(next.header("lambda-runtime-client-context"));
            this.identity = jsonHeader(next.header("lambda-runtime-cognito-identity"));
        }

        private static Map<?, ?> jsonHeader(String value) {
            if (value == null || value.isEmpty()) return null;
            try {
                Object parsed = Json.parse(value);
                return parsed instanceof Map ? (Map<?, ?>) parsed : null;
            } catch (RuntimeException e) {
                return null;
            }
        }

        @Override
        public String getAwsRequestId() {
            return requestId;
        }

        @Override
        public String getLogGroupName() {
            return env.get("AWS_LAMBDA_LOG_GROUP_NAME");
        }

        @Override
        public String getLogStreamName() {
            return env.get("AWS_LAMBDA_LOG_STREAM_NAME");
        }

        @Override
        public String getFunctionName() {
            return env.get("AWS_LAMBDA_FUNCTION_NAME");
        }

        @Override
        public String getFunctionVersion() {
            return env.get("AWS_LAMBDA_FUNCTION_VERSION");
        }

        @Override
        public String getInvokedFunctionArn() {
            return arn;
        }

        @Override
        public CognitoIdentity getIdentity() {
            if (identity == null) return null;
            return new CognitoIdentity() {
                @Override
                public String getIdentityId() {
                    return (String) identity.get("cognitoIdentityId");
                }

                @Override
                public String getIdentityPoolId() {
                    return (String) identity.get("cognitoIdentityPoolId");
                }
            };
        }

        @Override
        public ClientContext getClientContext() {
            if (clientContext == null) return null;
            Map<?, ?> client = clientContext.get("client") instanceof Map ? (Map<?, ?>) clientContext.get("client") : Map.of();
            return new ClientContext() {
                @Override
                public Client getClient() {
                    return new Client() {
                        @Override
                        public String getInstallationId() {
                            return (String) client.get("installation_id");
                        }

                        @Override
                        public String getAppTitle() {
                            return (String) client.get("app_title");
                        }

                        @Override
                        public String getAppVersionName() {
                            return (String) client.get("app_version_name");
                        }

                        @Override
                        public String getAppVersionCode() {
                            return (String) client.get("app_version_code");
                        }

                        @Override
                        public String getAppPackageName() {
                            return (String) client.get("app_package_name");
                        }
                    };
                }

                @Override
                @SuppressWarnings("unchecked")
                public Map<String, String> getCustom() {
                    return (Map<String, String>) clientContext.get("custom");
                }

                @Override
                @SuppressWarnings("unchecked")
                public Map<String, String> getEnvironment() {
                    return (Map<String, String>) clientContext.get("env");
                }
            };
        }

        @Override
        public int getRemainingTimeInMillis() {
            return (int) Math.max(0, deadline - System.currentTimeMillis());
        }

        @Override
        public int getMemoryLimitInMB() {
            return Integer.parseInt(env.getOrDefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"));
        }

        @Override
        public LambdaLogger getLogger() {
            return com.amazonaws.services.lambda.runtime.LambdaRuntime.getLogger();
        }
    }

    // ---- the Runtime API client ---------------------------------------------------------

    static final class RuntimeApi {
        private final String host;
        private final int port;
        private Socket socket;
        private InputStream in;
        private OutputStream out;

        static final class Answer {
            int status;
            final Map<String, String> headers = new LinkedHashMap<>();
            byte[] body = new byte[0];

            String header(String name) {
                return headers.get(name);
            }
        }

        RuntimeApi(String address) {
            int colon = address.lastIndexOf(':');
            this.host = address.substring(0, colon);
            this.port = Integer.parseInt(address.substring(colon + 1));
        }

        Answer get(String target) throws IOException {
            return exchange("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n", null);
        }

        void post(String target, String body, String errorType) throws IOException {
            post(target, body.getBytes(StandardCharsets.UTF_8), errorType);
        }

        void post(String target, byte[] body, String errorType) throws IOException {
            StringBuilder head = new StringBuilder("POST ").append(target).append(" HTTP/1.1\r\nHost: ").append(host);
            head.append("\r\nContent-Type: application/json\r\nContent-Length: ").append(body.length);
            if (errorType != null) head.append("\r\nLambda-Runtime-Function-Error-Type: ").append(errorType);
            exchange(head.append("\r\n\r\n").toString(), body);
        }

        private Answer exchange(String head, byte[] body) throws IOException {
            for (int attempt = 0; ; attempt++) {
                if (socket == null) connect();
                try {
                    out.write(head.getBytes(StandardCharsets.ISO_8859_1));
                    if (body != null) out.write(body);
                    out.flush();
                    Answer answer = read();
                    if (answer != null) return answer;
                } catch (IOException e) {
                    if (attempt > 0) throw e;
                }
                close(); // the server closed a kept-alive connection: once more on a new one
                if (attempt > 0) throw new IOException("Runtime API closed the connection");
            }
        }

        private void connect() throws IOException {
            socket = new Socket();
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress(host, port));
            in = new java.io.BufferedInputStream(socket.getInputStream(), 65536);
            out = new java.io.BufferedOutputStream(socket.getOutputStream(), 65536);
        }

        private void close() {
            try {
                if (socket != null) socket.close();
            } catch (IOException ignored) {
                // closing a broken socket
            }
            socket = null;
        }

        /** One response, or null if the connection closed before its first byte. */
        private Answer read() throws IOException {
            Answer answer = new Answer();
            String status = line();
            if (status == null) return null;
            answer.status = Integer.parseInt(status.split(" ")[1]);
            String line;
            while ((line = line()) != null && !line.isEmpty()) {
                int colon = line.indexOf(':');
                answer.headers.put(line.substring(0, colon).trim().toLowerCase(), line.substring(colon + 1).trim());
            }
            int length = Integer.parseInt(answer.headers.getOrDefault("content-length", "0"));
            answer.body = in.readNBytes(length);
            if (answer.body.length != length) throw new IOException("Runtime API closed the connection mid-body");
            return answer;
        }

        private String line() throws IOException {
            StringBuilder sb = new StringBuilder();
            int c;
            while ((c = in.read()) != -1) {
                if (c == '\n') {
                    int n = sb.length();
                    return n > 0 && sb.charAt(n - 1) == '\r' ? sb.substring(0, n - 1) : sb.toString();
                }
                sb.append((char) c);
            }
            return sb.length() == 0 ? null : sb.toString();
        }
    }
}
