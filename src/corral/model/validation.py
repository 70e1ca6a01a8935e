"""Validate Lambda API inputs against the botocore model's shapes, in AWS's words.

Owns the model's constraint checks (required, min/max, length, pattern, enum), Lambda's
tighter limits (`LAMBDA_RULES`) and the messages. It does not read the model (see
`corral.http.service_model`) nor check what needs state (4 KB of environment, reserved
variable names, deprecated runtimes): the control plane does.

Format, from real responses quoted in public issues and emulator snapshots:
ValidationException "1 validation error detected: " or "N validation errors detected: ",
then "; "-joined "Value '<v>' at '<path>' failed to satisfy constraint: <text>". <path> is
the member name with its first letter lowered (KMSKeyArn -> kMSKeyArn), dotted when nested;
a missing member is "Value null at", a sensitive one "Value at 'environment.variables'"
(serverless/serverless#3103). Bad list elements give one violation at the list: "Member must
satisfy constraint: [<all element constraints>, Member must not be null]" (cfn-lint#4428);
maps give "Map keys must satisfy constraint: [...]" and "Map value must satisfy constraint:
[..., Member must not be null]"; lists of structures recurse as 'x.1.member.y'. Values show
as Java's toString ([a, b], {k=v}). Timeout 3000 -> ValidationException, max 900
(covidatlas/li#575). A bare function name over 64 characters -> InvalidParameterValueException
keeping the "1 validation error detected: " header (aws-cdk#13264). A runtime outside the set
-> InvalidParameterValueException "Value X at 'runtime' failed to satisfy constraint: Member
must satisfy enum value set: [...] or be a valid ARN", no quotes, no header.

Not confirmed (our choice): the order of violations (model member order, then per member
bound, pattern, enum; AWS's looks hash-ordered, and its runtime list holds only runtimes open
for creation); that model violations win over the InvalidParameterValueException rules; the
MemorySize > 10240 wording (AWS's account-quota check says "'MemorySize' value failed to
satisfy constraint: ..."); the 64-character rule outside CreateFunction; the wording of
InvalidRequestContentException for type mismatches (Jackson's phrasing, but Jackson would
coerce "30" to an integer, we refuse); structures shown inside a list value; map values that
are structures ('<map>.<key>.<member>').
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corral.model import limits
from corral.model.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaError,
    ValidationException,
)


@dataclass(frozen=True)
class MemberRule:
    """Lambda's own constraint on a member, over the model's.

    `min`/`max` replace the model's bounds (the value for numbers, the length otherwise) and
    are reported like the model's. `enum` replaces the model's set; `name_max_len` bounds a
    bare function name (no ARN parts). Enum and name violations raise `error`: as
    ValidationException they join the list; as another type they are raised alone, and
    only when every model constraint holds.
    """

    min: int | None = None
    max: int | None = None
    enum: tuple[str, ...] | None = None
    name_max_len: int | None = None
    error: type[LambdaError] = ValidationException
    enum_suffix: str = ""


_FUNCTION_NAME = MemberRule(
    name_max_len=limits.FUNCTION_NAME_MAX_LEN, error=InvalidParameterValueException
)
_RUNTIME = MemberRule(error=InvalidParameterValueException, enum_suffix=" or be a valid ARN")

# Keyed by "Structure.Member", else by the member's target shape; the first found applies.
LAMBDA_RULES: Mapping[str, MemberRule] = {
    "Timeout": MemberRule(min=limits.TIMEOUT_MIN_S, max=limits.TIMEOUT_MAX_S),
    "MemorySize": MemberRule(min=limits.MEMORY_MIN_MB, max=limits.MEMORY_MAX_MB),
    "EphemeralStorageSize": MemberRule(
        min=limits.EPHEMERAL_STORAGE_MIN_MB, max=limits.EPHEMERAL_STORAGE_MAX_MB
    ),
    "FunctionName": _FUNCTION_NAME,
    "NamespacedFunctionName": _FUNCTION_NAME,
    "UnqualifiedFunctionName": _FUNCTION_NAME,
    "CreateFunctionRequest.Runtime": _RUNTIME,
    "UpdateFunctionConfigurationRequest.Runtime": _RUNTIME,
}

_NOT_NULL = "Member must not be null"
_BAD_BODY = "Could not parse request body into json: Could not parse payload into json: "
_NUMBERS = frozenset({"integer", "long", "double", "float"})
_INT_RANGE = {"integer": ("int", 2**31), "long": ("long", 2**63)}
# (accepted Python types, Java type named in InvalidRequestContentException)
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "java.lang.String"),
    "integer": ((int,), "java.lang.Integer"),
    "long": ((int,), "java.lang.Long"),
    "double": ((int, float), "java.lang.Double"),
    "float": ((int, float), "java.lang.Float"),
    "boolean": ((bool,), "java.lang.Boolean"),
    "blob": ((str, bytes, bytearray, memoryview), "java.nio.ByteBuffer"),
    "timestamp": ((str, int, float), "java.util.Date"),
    "list": ((list, tuple), "java.util.List"),
    "map": ((dict,), "java.util.Map"),
}
_WIRE_INT = re.compile(r"[+-]?\d+")
_LINE_END = "\n\r\x85\u2028\u2029"  # Java's line terminators
_JAVA_DOLLAR = r"(?=(?:\r\n|[" + _LINE_END + r"])?\Z)"
_NAME_PREFIX = re.compile(r"\d{12}|function|[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d")


def _java_regex(pattern: str) -> str:
    """Java regex -> Python re: `.` and `$` know all Java line terminators; `\\z`, `\\Z`.

    Compile with re.ASCII (Java's `\\d`, `\\s`, `\\w` are ASCII) and match with fullmatch.
    """
    out, i, depth = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(r"\Z" if nxt == "z" else _JAVA_DOLLAR if nxt == "Z" else c + nxt)
            i += 2
            continue
        if c == "[":
            depth += 1
        elif c == "]" and depth:
            depth -= 1
        elif c == "." and not depth:
            c = "[^" + _LINE_END + "]"
        elif c == "$" and not depth:
            c = _JAVA_DOLLAR
        out.append(c)
        i += 1
    return "".join(out)


def _type_error(java_type: str, value: object) -> InvalidRequestContentException:
    if isinstance(value, str):
        detail = f'from String "{value}": not a valid `{java_type}` value'
    elif isinstance(value, dict):
        detail = "from Object value (token `JsonToken.START_OBJECT`)"
    elif isinstance(value, list | tuple):
        detail = "from Array value (token `JsonToken.START_ARRAY`)"
    elif isinstance(value, bool):
        detail = f"from Boolean value (token `JsonToken.VALUE_{str(value).upper()}`)"
    else:
        detail = f"from Number value ({value})"
    return InvalidRequestContentException(
        f"{_BAD_BODY}Cannot deserialize value of type `{java_type}` {detail}"
    )


def _typecheck(kind: str, value: object) -> None:
    accepted, java_type = _TYPES.get(kind, ((object,), kind))
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind != "boolean"):
        raise _type_error(java_type, value)
    if kind in _INT_RANGE:
        name, bound = _INT_RANGE[kind]
        if not -bound <= value < bound:  # type: ignore[operator]
            raise InvalidRequestContentException(
                f"{_BAD_BODY}Numeric value ({value}) out of range of {name} "
                f"({-bound} - {bound - 1})"
            )


def _render(value: object) -> str:
    """Java's toString of the deserialized value, as AWS's messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    return str(value)


def _violation(value: object, sensitive: bool, path: str, text: str) -> str:
    shown = "" if sensitive else "null " if value is None else f"'{_render(value)}' "
    return f"Value {shown}at '{path}' failed to satisfy constraint: {text}"


def _bare_function_name(value: str) -> str | None:
    """The name in `name` or `name:qualifier`; None for full and partial ARNs."""
    parts = value.split(":")
    if len(parts) == 1 or (len(parts) == 2 and not _NAME_PREFIX.fullmatch(parts[0])):
        return parts[0]
    return None


class _Report:
    __slots__ = ("deferred", "errors")

    def __init__(self) -> None:
        self.errors: list[str] = []  # ValidationException violations
        self.deferred: list[LambdaError] = []  # raised only when `errors` stays empty


class _Node:
    """A compiled non-structure shape; `constraints` reads as AWS's "[...]" lists them."""

    __slots__ = ("constraints", "kind", "max", "min", "sensitive", "word")

    def __init__(self, shape: Mapping[str, Any], rule: MemberRule | None = None) -> None:
        self.kind: str = shape["type"]
        self.word = "value" if self.kind in _NUMBERS else "length"
        self.sensitive = bool(shape.get("sensitive"))
        self.min = shape.get("min") if rule is None or rule.min is None else rule.min
        self.max = shape.get("max") if rule is None or rule.max is None else rule.max
        self.constraints = [
            f"Member must have {self.word} {relation} than or equal to {bound}"
            for relation, bound in (("less", self.max), ("greater", self.min))
            if bound is not None
        ]

    def size(self, value: Any) -> Any:
        return len(value)

    def failures(self, value: Any) -> list[str]:
        """The constraints `value` (already type-checked) breaks."""
        if self.min is None and self.max is None:
            return []
        size = self.size(value)
        if self.min is not None and size < self.min:
            return [f"Member must have {self.word} greater than or equal to {self.min}"]
        if self.max is not None and size > self.max:
            return [f"Member must have {self.word} less than or equal to {self.max}"]
        return []

    def check(self, value: object, path: str, report: _Report) -> None:
        _typecheck(self.kind, value)
        for text in self.failures(value):
            report.errors.append(_violation(value, self.sensitive, path, text))

    def element_fails(self, value: object) -> bool:
        """Whether `value`, as a list element or map value, breaks a constraint."""
        if value is None:
            return True
        _typecheck(self.kind, value)
        return bool(self.failures(value))


class _Scalar(_Node):
    __slots__ = ("enum", "enum_text", "pattern_text", "regex")

    def __init__(self, shape: Mapping[str, Any], rule: MemberRule | None = None) -> None:
        super().__init__(shape, rule)
        pattern = shape.get("pattern")
        self.regex = re.compile(_java_regex(pattern), re.ASCII) if pattern else None
        self.pattern_text = f"Member must satisfy regular expression pattern: {pattern}"
        enum = shape.get("enum")
        if rule is not None and rule.error is not ValidationException:
            enum = None  # the member's rule reports it, with its own error type
        elif rule is not None and rule.enum is not None:
            enum = rule.enum
        self.enum: tuple[str, ...] | None = tuple(enum) if enum else None
        self.enum_text = f"Member must satisfy enum value set: [{', '.join(self.enum or ())}]"
        self.constraints += [self.pattern_text] if pattern else []
        self.constraints += [self.enum_text] if self.enum else []

    def size(self, value: Any) -> Any:
        if self.kind in _NUMBERS:
            return value
        if self.kind == "blob" and isinstance(value, str):
            try:  # blobs travel as base64 in JSON
                return len(base64.b64decode(value, validate=True))
            except binascii.Error as exc:
                raise InvalidRequestContentException(f"{_BAD_BODY}{exc}") from None
        return len(value)  # strings: code points, as AWS counts

    def from_wire(self, value: str) -> object:
        """A header, path or query string value as the typed value it stands for."""
        if self.kind in ("integer", "long") and _WIRE_INT.fullmatch(value):
            return int(value)
        if self.kind == "boolean" and value in ("true", "false"):
            return value == "true"
        return value

    def failures(self, value: Any) -> list[str]:
        texts = super().failures(value)
        if self.regex is not None and not self.regex.fullmatch(value):
            texts.append(self.pattern_text)
        if self.enum is not None and value not in self.enum:
            texts.append(self.enum_text)
        return texts


class _List(_Node):
    __slots__ = ("member",)

    def __init__(self, shape: Mapping[str, Any], member: _Node | _Structure) -> None:
        super().__init__(shape)
        self.member = member
        self.sensitive = self.sensitive or member.sensitive

    def check(self, value: Any, path: str, report: _Report) -> None:
        super().check(value, path, report)
        member = self.member
        if isinstance(member, _Structure):
            for i, item in enumerate(value, 1):
                member.check_member(item, f"{path}.{i}.member", report)
        elif any([member.element_fails(item) for item in value]):  # type-check them all
            texts = ", ".join([*member.constraints, _NOT_NULL])
            text = f"Member must satisfy constraint: [{texts}]"
            report.errors.append(_violation(value, self.sensitive, path, text))


class _Map(_Node):
    __slots__ = ("key", "value")

    def __init__(self, shape: Mapping[str, Any], key: _Node, value: _Node | _Structure) -> None:
        super().__init__(shape)
        self.key, self.value = key, value
        self.sensitive = self.sensitive or key.sensitive or value.sensitive

    def check(self, value: Any, path: str, report: _Report) -> None:
        super().check(value, path, report)
        if any([self.key.element_fails(k) for k in value]):
            text = f"Map keys must satisfy constraint: [{', '.join(self.key.constraints)}]"
            report.errors.append(_violation(value, self.sensitive, path, text))
        if isinstance(self.value, _Structure):
            for k, item in value.items():
                self.value.check_member(item, f"{path}.{k}", report)
        elif any([self.value.element_fails(v) for v in value.values()]):
            texts = ", ".join([*self.value.constraints, _NOT_NULL])
            text = f"Map value must satisfy constraint: [{texts}]"
            report.errors.append(_violation(value, self.sensitive, path, text))


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    path: str  # lowerCamelCase, as AWS's messages name it
    required: bool
    located: bool  # travels in a header, path or query string, so may arrive as str
    node: _Node | _Structure
    rule: MemberRule | None
    deferred_enum: tuple[str, ...] | None  # the rule's enum check, raised alone

    def apply_rule(self, value: Any, path: str, report: _Report) -> None:
        rule = self.rule
        if rule is None:
            return
        if rule.name_max_len is not None and isinstance(value, str):
            name = _bare_function_name(value)
            if name is not None and len(name) > rule.name_max_len:
                text = f"Member must have length less than or equal to {rule.name_max_len}"
                violation = _violation(value, False, path, text)
                if rule.error is ValidationException:
                    report.errors.append(violation)
                else:
                    report.deferred.append(rule.error(f"1 validation error detected: {violation}"))
        if self.deferred_enum is not None and value not in self.deferred_enum:
            report.deferred.append(
                rule.error(
                    f"Value {_render(value)} at '{path}' failed to satisfy constraint: Member "
                    f"must satisfy enum value set: [{', '.join(self.deferred_enum)}]"
                    f"{rule.enum_suffix}"
                )
            )


class _Structure:
    __slots__ = ("java_type", "members", "sensitive")

    def __init__(self, name: str, shape: Mapping[str, Any]) -> None:
        self.java_type = name
        self.sensitive = bool(shape.get("sensitive"))
        self.members: tuple[_Member, ...] = ()

    def check_member(self, value: object, path: str, report: _Report) -> None:
        if value is None:
            report.errors.append(_violation(None, False, path, _NOT_NULL))
        else:
            self.check(value, path + ".", report)

    def check(self, value: object, prefix: str, report: _Report) -> None:
        if not isinstance(value, dict):
            raise _type_error(self.java_type, value)
        for m in self.members:
            item, path = value.get(m.name), prefix + m.path
            if item is None:
                if m.required:
                    report.errors.append(_violation(None, False, path, _NOT_NULL))
                continue
            node = m.node
            if isinstance(node, _Structure):
                node.check(item, path + ".", report)
                continue
            if m.located and isinstance(item, str) and isinstance(node, _Scalar):
                item = node.from_wire(item)
            node.check(item, path, report)
            m.apply_rule(item, path, report)


class InputValidator:
    """Checks an operation's input against the model's constraints and Lambda's rules.

    Build one per process from `ServiceModel.shapes`; each shape is compiled (regexes,
    bounds, rules) on first use and kept. Sync and CPU-only: it never waits.
    """

    def __init__(
        self, shapes: Mapping[str, Any], rules: Mapping[str, MemberRule] = LAMBDA_RULES
    ) -> None:
        self._shapes = shapes
        self._rules = rules
        self._structures: dict[str, _Structure] = {}
        self._nodes: dict[tuple[str, MemberRule | None], _Node] = {}

    def validate(self, shape_name: str, params: object) -> None:
        """Validate `params`: the input members by model name (body, path, query, headers).

        Unknown members are ignored, as AWS does; header, path and query string values may
        be raw strings. Raises ValidationException listing every violation,
        InvalidRequestContentException when a value has the wrong JSON type (or `params`
        is no object), else a rule's own error (InvalidParameterValueException for a
        runtime outside the set or a bare function name over 64 characters).
        KeyError if `shape_name` is not in the model.
        """
        report = _Report()
        self._structure(shape_name).check(params, "", report)
        if report.errors:
            n = len(report.errors)
            head = f"{n} validation error{'' if n == 1 else 's'} detected: "
            raise ValidationException(head + "; ".join(report.errors))
        if report.deferred:
            raise report.deferred[0]

    def _structure(self, name: str) -> _Structure:
        found = self._structures.get(name)
        if found is None:
            shape = self._shapes[name]
            # Cached before its members compile, so recursive shapes terminate.
            found = self._structures[name] = _Structure(name, shape)
            try:
                found.members = tuple(self._members(name, shape))
            except BaseException:
                del self._structures[name]
                raise
        return found

    def _members(self, name: str, shape: Mapping[str, Any]) -> list[_Member]:
        required = set(shape.get("required", ()))
        members = []
        for member_name, ref in shape.get("members", {}).items():
            target = ref["shape"]
            rule = self._rules.get(f"{name}.{member_name}") or self._rules.get(target)
            deferred_enum = None
            if rule is not None and rule.error is not ValidationException:
                deferred_enum = rule.enum or tuple(self._shapes[target].get("enum", ())) or None
            members.append(
                _Member(
                    name=member_name,
                    path=member_name[:1].lower() + member_name[1:],
                    required=member_name in required,
                    located="location" in ref,
                    node=self._node(target, rule),
                    rule=rule,
                    deferred_enum=deferred_enum,
                )
            )
        return members

    def _node(self, name: str, rule: MemberRule | None = None) -> _Node | _Structure:
        shape = self._shapes[name]
        kind = shape["type"]
        if kind == "structure":
            return self._structure(name)
        node = self._nodes.get((name, rule))
        if node is None:
            if kind == "list":
                node = _List(shape, self._node(shape["member"]["shape"]))
            elif kind == "map":
                key = self._node(shape["key"]["shape"])
                assert isinstance(key, _Node)  # map keys are strings in AWS models
                node = _Map(shape, key, self._node(shape["value"]["shape"]))
            else:
                node = _Scalar(shape, rule)
            self._nodes[name, rule] = node
        return node
