package corral.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The JSON codec of Corral's Java runtime: events to handler argument types and results back,
 * with no third-party jar (Maven Central is out of reach here, and Jackson costs ~100 ms of
 * class loading at every cold start). Types: String, primitives and their boxes, BigDecimal,
 * BigInteger, enums, Map, List/Collection/Set, arrays, Object (maps, lists, strings, numbers,
 * booleans), records (through their canonical constructor and component accessors), byte[] as
 * a base64 string (as Jackson) and POJOs: a public no-argument constructor and setters or
 * public fields, matched case-insensitively and ignoring unknown properties, as Lambda's
 * serializer does.
 */
final class Json {
    private Json() {}

    static final class ParseException extends RuntimeException {
        ParseException(String message) {
            super(message);
        }
    }

    // ---- parsing ----------------------------------------------------------------------

    static Object parse(String text) {
        Parser p = new Parser(text);
        p.skip();
        Object value = p.value();
        p.skip();
        if (p.pos != text.length()) throw p.error("Unexpected character");
        return value;
    }

    private static final class Parser {
        final String s;
        int pos;

        Parser(String s) {
            this.s = s;
        }

        ParseException error(String what) {
            return new ParseException(what + " at position " + pos);
        }

        void skip() {
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
                pos++;
            }
        }

        Object value() {
            if (pos >= s.length()) throw error("Unexpected end of input");
            char c = s.charAt(pos);
            switch (c) {
                case '{':
                    return object();
                case '[':
                    return array();
                case '"':
                    return string();
                case 't':
                    return literal("true", Boolean.TRUE);
                case 'f':
                    return literal("false", Boolean.FALSE);
                case 'n':
                    return literal("null", null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return number();
                    throw error("Unexpected character '" + c + "'");
            }
        }

        Object literal(String word, Object value) {
            if (!s.startsWith(word, pos)) throw error("Unexpected token");
            pos += word.length();
            return value;
        }

        Map<String, Object> object() {
            Map<String, Object> map = new LinkedHashMap<>();
            pos++;
            skip();
            if (pos < s.length() && s.charAt(pos) == '}') {
                pos++;
                return map;
            }
            while (true) {
                skip();
                if (pos >= s.length() || s.charAt(pos) != '"') throw error("Expected a property name");
                String key = string();
                skip();
                if (pos >= s.length() || s.charAt(pos) != ':') throw error("Expected ':'");
                pos++;
                skip();
                map.put(key, value());
                skip();
                if (pos >= s.length()) throw error("Unexpected end of input");
                char c = s.charAt(pos++);
                if (c == '}') return map;
                if (c != ',') throw error("Expected ',' or '}'");
            }
        }

        List<Object> array() {
            List<Object> list = new ArrayList<>();
            pos++;
            skip();
            if (pos < s.length() && s.charAt(pos) == ']') {
                pos++;
                return list;
            }
            while (true) {
                skip();
                list.add(value());
                skip();
                if (pos >= s.length()) throw error("Unexpected end of input");
                char c = s.charAt(pos++);
                if (c == ']') return list;
                if (c != ',') throw error("Expected ',' or ']'");
            }
        }

        String string() {
            pos++;
            StringBuilder out = null;
            int start = pos;
            while (true) {
                if (pos >= s.length()) throw error("Unterminated string");
                char c = s.charAt(pos);
                if (c == '"') {
                    String tail = s.substring(start, pos++);
                    return out == null ? tail : out.append(tail).toString();
                }
                if (c < 0x20) throw error("Control character in string");
                if (c != '\\') {
                    pos++;
                    continue;
                }
                if (out == null) out = new StringBuilder();
                out.append(s, start, pos);
                if (pos + 1 >= s.length()) throw error("Unterminated string");
                char e = s.charAt(pos + 1);
                pos += 2;
                switch (e) {
                    case '"': out.append('"'); break;
                    case '\\': out.append('\\'); break;
                    case '/': out.append('/'); break;
                    case 'b': out.append('\b'); break;
                    case 'f': out.append('\f'); break;
                    case 'n': out.append('\n'); break;
                    case 'r': out.append('\r'); break;
                    case 't': out.append('\t'); break;
                    case 'u':
                        if (pos + 4 > s.length()) throw error("Bad unicode escape");
                        try {
                            out.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
                        } catch (NumberFormatException ex) {
                            throw error("Bad unicode escape");
                        }
                        pos += 4;
                        break;
                    default:
                        throw error("Bad escape");
                }
                start = pos;
            }
        }

        Number number() {
            int start = pos;
            boolean integral = true;
            if (s.charAt(pos) == '-') pos++;
            while (pos < s.length()) {
                char c = s.charAt(pos);
                if (c >= '0' && c <= '9') {
                    pos++;
                } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                    integral = false;
                    pos++;
                } else {
                    break;
                }
            }
            String text = s.substring(start, pos);
            try {
                if (integral) {
                    if (text.length() < 19) {
                        long v = Long.parseLong(text);
                        if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) return (int) v;
                        return v;
                    }
                    return new BigInteger(text);
                }
                return Double.parseDouble(text);
            } catch (NumberFormatException ex) {
                throw error("Bad number '" + text + "'");
            }
        }
    }

    // ---- converting parsed JSON to a Java type --------------------------------------------

    static Object convert(Object value, Type type) {
        if (type instanceof WildcardType) type = ((WildcardType) type).getUpperBounds()[0];
        Class<?> raw = rawClass(type);
        if (value == null) {
            if (raw.isPrimitive()) return convert(raw == boolean.class ? Boolean.FALSE : 0, raw);
            return null;
        }
        if (raw == Object.class) return value;
        if (raw == String.class) {
            if (value instanceof String) return value;
            if (value instanceof Map || value instanceof List) {
                throw new ParseException("Cannot deserialize a JSON " + describe(value) + " into a String");
            }
            return String.valueOf(value);
        }
        if (raw == boolean.class || raw == Boolean.class) {
            if (value instanceof Boolean) return value;
            if (value instanceof String) return Boolean.parseBoolean((String) value);
            throw mismatch(value, raw);
        }
        if (raw == char.class || raw == Character.class) {
            if (value instanceof String && ((String) value).length() == 1) return ((String) value).charAt(0);
            throw mismatch(value, raw);
        }
        if (raw.isPrimitive() || Number.class.isAssignableFrom(raw)) return number(value, raw);
        if (raw.isEnum()) {
            for (Object constant : raw.getEnumConstants()) {
                if (((Enum<?>) constant).name().equals(value)) return constant;
            }
            throw new ParseException("Unknown " + raw.getSimpleName() + " value " + value);
        }
        if (raw == byte[].class && value instanceof String) {
            try {
                return Base64.getMimeDecoder().decode((String) value);
            } catch (IllegalArgumentException e) {
                throw new ParseException("Cannot deserialize a JSON string into byte[]: not base64");
            }
        }
        if (raw.isArray() || type instanceof GenericArrayType) {
            if (!(value instanceof List)) throw mismatch(value, raw);
            Type component = type instanceof GenericArrayType
                    ? ((GenericArrayType) type).getGenericComponentType()
                    : raw.getComponentType();
            List<?> list = (List<?>) value;
            Object array = Array.newInstance(rawClass(component), list.size());
            for (int i = 0; i < list.size(); i++) Array.set(array, i, convert(list.get(i), component));
            return array;
        }
        if (Map.class.isAssignableFrom(raw)) {
            if (!(value instanceof Map)) throw mismatch(value, raw);
            Type valueType = typeArgument(type, 1);
            Map<Object, Object> map = raw.isInterface() ? new LinkedHashMap<>() : (Map<Object, Object>) instantiate(raw);
            Type keyType = typeArgument(type, 0);
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                map.put(convert(e.getKey(), keyType), convert(e.getValue(), valueType));
            }
            return map;
        }
        if (Collection.class.isAssignableFrom(raw)) {
            if (!(value instanceof List)) throw mismatch(value, raw);
            Type itemType = typeArgument(type, 0);
            Collection<Object> items;
            if (!raw.isInterface()) items = (Collection<Object>) instantiate(raw);
            else if (Set.class.isAssignableFrom(raw)) items = new LinkedHashSet<>();
            else items = new ArrayList<>();
            for (Object item : (List<?>) value) items.add(convert(item, itemType));
            return items;
        }
        if (!(value instanceof Map)) throw mismatch(value, raw);
        if (raw.isRecord()) return record((Map<?, ?>) value, raw);
        return pojo((Map<?, ?>) value, raw);
    }

    private static ParseException mismatch(Object value, Class<?> raw) {
        return new ParseException("Cannot deserialize a JSON " + describe(value) + " into " + raw.getName());
    }

    private static String describe(Object value) {
        if (value instanceof Map) return "object";
        if (value instanceof List) return "array";
        if (value instanceof String) return "string";
        if (value instanceof Boolean) return "boolean";
        return "number";
    }

    private static Object number(Object value, Class<?> raw) {
        BigDecimal n;
        if (value instanceof Number) n = new BigDecimal(value.toString());
        else if (value instanceof String) {
            try {
                n = new BigDecimal(((String) value).trim());
            } catch (NumberFormatException e) {
                throw mismatch(value, raw);
            }
        } else throw mismatch(value, raw);
        if (raw == int.class || raw == Integer.class) return n.intValue();
        if (raw == long.class || raw == Long.class) return n.longValue();
        if (raw == double.class || raw == Double.class) return n.doubleValue();
        if (raw == float.class || raw == Float.class) return n.floatValue();
        if (raw == short.class || raw == Short.class) return n.shortValue();
        if (raw == byte.class || raw == Byte.class) return n.byteValue();
        if (raw == BigInteger.class) return n.toBigInteger();
        if (raw == BigDecimal.class || raw == Number.class) return n;
        throw mismatch(value, raw);
    }

    static Class<?> rawClass(Type type) {
        if (type instanceof Class) return (Class<?>) type;
        if (type instanceof ParameterizedType) return (Class<?>) ((ParameterizedType) type).getRawType();
        if (type instanceof GenericArrayType) {
            return Array.newInstance(rawClass(((GenericArrayType) type).getGenericComponentType()), 0).getClass();
        }
        if (type instanceof WildcardType) return rawClass(((WildcardType) type).getUpperBounds()[0]);
        return Object.class; // a type variable that was never bound
    }

    private static Type typeArgument(Type type, int index) {
        if (type instanceof ParameterizedType) {
            Type[] args = ((ParameterizedType) type).getActualTypeArguments();
            if (index < args.length) return args[index];
        }
        return Object.class;
    }

    private static Object instantiate(Class<?> raw) {
        try {
            java.lang.reflect.Constructor<?> ctor = raw.getDeclaredConstructor();
            ctor.setAccessible(true);
            return ctor.newInstance();
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new ParseException("Cannot create " + raw.getName() + ": it needs a no-argument constructor");
        }
    }

    /** A record from its canonical constructor: components matched case-insensitively,
     * missing ones null (or a primitive's zero), unknown properties ignored. */
    private static Object record(Map<?, ?> value, Class<?> raw) {
        Map<String, Object> byName = new HashMap<>();
        for (Map.Entry<?, ?> e : value.entrySet()) {
            byName.putIfAbsent(String.valueOf(e.getKey()).toLowerCase(Locale.ROOT), e.getValue());
        }
        RecordComponent[] components = raw.getRecordComponents();
        Class<?>[] types = new Class<?>[components.length];
        Object[] args = new Object[components.length];
        for (int i = 0; i < components.length; i++) {
            types[i] = components[i].getType();
            Object item = byName.get(components[i].getName().toLowerCase(Locale.ROOT));
            args[i] = convert(item, components[i].getGenericType());
        }
        try {
            java.lang.reflect.Constructor<?> ctor = raw.getDeclaredConstructor(types);
            ctor.setAccessible(true);
            return ctor.newInstance(args);
        } catch (java.lang.reflect.InvocationTargetException e) {
            throw new ParseException("Cannot create " + raw.getName() + ": " + e.getCause());
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new ParseException("Cannot create " + raw.getName() + ": " + e);
        }
    }

    private static final Map<Class<?>, Map<String, Object>> SETTERS = new HashMap<>();

    /** lower-cased property name -> a one-argument setter, or a field */
    private static Map<String, Object> setters(Class<?> raw) {
        Map<String, Object> found = SETTERS.get(raw);
        if (found != null) return found;
        found = new HashMap<>();
        for (Class<?> c = raw; c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                int mod = f.getModifiers();
                if (Modifier.isStatic(mod) || Modifier.isTransient(mod) || Modifier.isFinal(mod)) continue;
                if (!Modifier.isPublic(mod)) continue;
                found.putIfAbsent(f.getName().toLowerCase(Locale.ROOT), f);
            }
        }
        for (Method m : raw.getMethods()) {
            if (m.getParameterCount() == 1 && m.getName().startsWith("set") && m.getName().length() > 3
                    && !Modifier.isStatic(m.getModifiers())) {
                found.put(m.getName().substring(3).toLowerCase(Locale.ROOT), m);
            }
        }
        SETTERS.put(raw, found);
        return found;
    }

    private static Object pojo(Map<?, ?> value, Class<?> raw) {
        Object target = instantiate(raw);
        Map<String, Object> setters = setters(raw);
        for (Map.Entry<?, ?> e : value.entrySet()) {
            Object member = setters.get(String.valueOf(e.getKey()).toLowerCase(Locale.ROOT));
            try {
                if (member instanceof Method) {
                    Method m = (Method) member;
                    m.invoke(target, convert(e.getValue(), m.getGenericParameterTypes()[0]));
                } else if (member instanceof Field) {
                    Field f = (Field) member;
                    f.set(target, convert(e.getValue(), f.getGenericType()));
                }
            } catch (ReflectiveOperationException ex) {
                throw new ParseException("Cannot set " + e.getKey() + " on " + raw.getName());
            }
        }
        return target;
    }

    // ---- writing ----------------------------------------------------------------------

    static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out, 0);
        return out.toString();
    }

    private static void write(Object value, StringBuilder out, int depth) {
        if (depth > 200) throw new IllegalStateException("Nesting too deep (a cycle?)");
        if (value == null) {
            out.append("null");
        } else if (value instanceof String || value instanceof Character || value instanceof Enum) {
            string(value instanceof Enum ? ((Enum<?>) value).name() : value.toString(), out);
        } else if (value instanceof Boolean) {
            out.append(value);
        } else if (value instanceof Double || value instanceof Float) {
            double d = ((Number) value).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) string(value.toString(), out);
            else out.append(value);
        } else if (value instanceof Number) {
            out.append(value instanceof BigDecimal ? ((BigDecimal) value).toPlainString() : value.toString());
        } else if (value instanceof Map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!first) out.append(',');
                first = false;
                string(String.valueOf(e.getKey()), out);
                out.append(':');
                write(e.getValue(), out, depth + 1);
            }
            out.append('}');
        } else if (value instanceof Iterable) {
            out.append('[');
            boolean first = true;
            for (Object item : (Iterable<?>) value) {
                if (!first) out.append(',');
                first = false;
                write(item, out, depth + 1);
            }
            out.append(']');
        } else if (value instanceof byte[]) {
            string(Base64.getEncoder().encodeToString((byte[]) value), out);
        } else if (value.getClass().isArray()) {
            out.append('[');
            int n = Array.getLength(value);
            for (int i = 0; i < n; i++) {
                if (i > 0) out.append(',');
                write(Array.get(value, i), out, depth + 1);
            }
            out.append(']');
        } else {
            writePojo(value, out, depth);
        }
    }

    private static void writePojo(Object value, StringBuilder out, int depth) {
        Map<String, Object> properties = new LinkedHashMap<>();
        Class<?> raw = value.getClass();
        try {
            if (raw.isRecord()) { // its components, in declaration order
                for (RecordComponent c : raw.getRecordComponents()) {
                    Method accessor = c.getAccessor();
                    accessor.setAccessible(true);
                    properties.put(c.getName(), accessor.invoke(value));
                }
                write(properties, out, depth + 1);
                return;
            }
            for (Field f : raw.getFields()) {
                if (!Modifier.isStatic(f.getModifiers())) properties.put(f.getName(), f.get(value));
            }
            for (Method m : raw.getMethods()) {
                if (m.getParameterCount() != 0 || Modifier.isStatic(m.getModifiers())) continue;
                if (m.getDeclaringClass() == Object.class) continue;
                String name = m.getName();
                String property;
                if (name.startsWith("get") && name.length() > 3) property = name.substring(3);
                else if (name.startsWith("is") && name.length() > 2
                        && (m.getReturnType() == boolean.class || m.getReturnType() == Boolean.class)) {
                    property = name.substring(2);
                } else continue;
                m.setAccessible(true);
                properties.put(decapitalize(property), m.invoke(value));
            }
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("Cannot serialize " + raw.getName() + ": " + e);
        }
        write(properties, out, depth + 1);
    }

    private static String decapitalize(String name) {
        if (name.length() > 1 && Character.isUpperCase(name.charAt(1))) return name;
        return Character.toLowerCase(name.charAt(0)) + name.substring(1);
    }

    static void string(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
            }
        }
        out.append('"');
    }
}
