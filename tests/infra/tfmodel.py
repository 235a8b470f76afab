"""Infrastructure tests: a small, fail-closed model of a Terraform root built with python-hcl2.

There is no terraform binary here, so this module reads the HCL itself: it parses every `.tf` file
of a root and of the local modules it calls, and evaluates the expressions the policy tests need:
literals, `var.*` (module arguments, tfvars, defaults), `local.*`, `module.<m>.<output>`,
`each.key`/`each.value` of a `for_each` over a resource or a literal map, and references to
resources (`aws_x.y.id` becomes a `Ref`). Anything else (function calls, `for` expressions,
conditionals) becomes `Unresolved`, which keeps its text and the resources it mentions; policy
checks treat an `Unresolved` security attribute as a violation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each", "lifecycle"}
_PATH = re.compile(
    r"""^[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[(?:\d+|"[^"]*"|[A-Za-z_][\w.]*)\])*$"""
)
_SEGMENT = re.compile(r"""\.([A-Za-z_][\w-]*)|\[(\d+|"[^"]*"|[A-Za-z_][\w.]*)\]""")
_RESOURCE_REF = re.compile(r"(?<![\w.])((?:data\.)?aws_[a-z0-9_]+\.[A-Za-z_][\w-]*)")


@dataclass(frozen=True)
class Ref:
    """A reference to a resource or data source: its full address and the attribute path."""

    address: str
    attr: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ".".join((self.address, *self.attr))


@dataclass(frozen=True)
class Unresolved:
    """An expression this model does not evaluate; `refs` are the resource addresses it mentions."""

    text: str
    refs: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"<unresolved {self.text}>"


def _split_templates(text: str) -> list[tuple[bool, str]]:
    """Split a string into literal parts and `${...}` expressions (braces and quotes balanced)."""
    parts: list[tuple[bool, str]] = []
    index, literal = 0, ""
    while index < len(text):
        if text.startswith("${", index):
            depth, cursor, quote = 1, index + 2, False
            while cursor < len(text) and depth:
                char = text[cursor]
                if char == '"' and text[cursor - 1] != "\\":
                    quote = not quote
                elif not quote and char == "{":
                    depth += 1
                elif not quote and char == "}":
                    depth -= 1
                cursor += 1
            if literal:
                parts.append((False, literal))
                literal = ""
            parts.append((True, text[index + 2 : cursor - 1]))
            index = cursor
        else:
            literal += text[index]
            index += 1
    if literal:
        parts.append((False, literal))
    return parts


def _segments(path: str) -> list[str | int]:
    head = re.match(r"[A-Za-z_][\w-]*", path)
    assert head is not None
    segments: list[str | int] = [head.group(0)]
    for name, index in _SEGMENT.findall(path[head.end() :]):
        if name:
            segments.append(name)
        elif index.isdigit():
            segments.append(int(index))
        elif index.startswith('"'):
            segments.append(index[1:-1])
        else:
            segments.append("$" + index)  # an index that is itself an expression
    return segments


def _indexable(value: Any, segment: Any) -> bool:
    if isinstance(value, dict):
        return not isinstance(segment, Unresolved) and segment in value
    return isinstance(value, list) and isinstance(segment, int) and segment < len(value)


@dataclass
class ModuleSource:
    """One directory of `.tf` files, parsed."""

    path: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    module_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tfvars: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


@cache
def parse_dir(path: Path) -> ModuleSource:
    """Parse every `.tf` file of a directory (not recursive) plus its tfvars files."""
    source = ModuleSource(path)
    for file in sorted(path.glob("*.tf")):
        doc = _load(file)
        for block in doc.get("variable", []):
            for name, body in block.items():
                source.variables[name] = body
                source.files[f"var.{name}"] = file
        for block in doc.get("locals", []):
            source.locals.update(block)
        for kind, target in (("resource", source.resources), ("data", source.data)):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        target[f"{rtype}.{name}"] = body
                        source.files[f"{'data.' if kind == 'data' else ''}{rtype}.{name}"] = file
        for block in doc.get("module", []):
            for name, body in block.items():
                source.module_calls[name] = body
                source.files[f"module.{name}"] = file
        for block in doc.get("output", []):
            for name, body in block.items():
                source.outputs[name] = body
                source.files[f"output.{name}"] = file
    for file in [path / "terraform.tfvars", *sorted(path.glob("*.auto.tfvars"))]:
        if file.exists():
            source.tfvars.update(_load(file))
    return source


class Instance:
    """A module instantiated at an address prefix, with its arguments evaluated in the caller."""

    def __init__(
        self,
        path: Path,
        prefix: str = "",
        parent: Instance | None = None,
        args: dict[str, Any] | None = None,
    ) -> None:
        self.source = parse_dir(path.resolve())
        self.path = path.resolve()
        self.prefix = prefix
        self.parent = parent
        self.args = {k: v for k, v in (args or {}).items() if k not in _META_ARGUMENTS}
        self._cache: dict[tuple[str, str], Any] = {}
        self._evaluating: set[tuple[str, str]] = set()
        self.children: dict[str, Instance] = {}
        self.remote_calls: dict[str, str] = {}  # registry or git sources: not readable offline
        for name, body in self.source.module_calls.items():
            source = str(body.get("source", ""))
            if not source.startswith(("./", "../")):
                self.remote_calls[name] = source
                continue
            self.children[name] = Instance(
                (self.path / source).resolve(), f"{prefix}module.{name}.", self, body
            )

    # ---- names

    def var(self, name: str) -> Any:
        """A variable's value: the caller's argument, else tfvars, else the default."""
        return self._memo("var", name, lambda: self._var(name))

    def _var(self, name: str) -> Any:
        if name in self.args and self.parent is not None:
            return self.parent.eval(self.args[name])
        if name in self.source.tfvars:
            return self.source.tfvars[name]
        body = self.source.variables.get(name, {})
        if "default" in body:
            return body["default"]
        return Unresolved(f"var.{name}")

    def local(self, name: str) -> Any:
        """A local value, evaluated in this module."""
        if name not in self.source.locals:
            return Unresolved(f"local.{name}")
        return self._memo("local", name, lambda: self.eval(self.source.locals[name]))

    def output(self, name: str) -> Any:
        """An output value, evaluated in this module."""
        body = self.source.outputs.get(name)
        if body is None:
            return Unresolved(f"output.{name}")
        return self._memo("output", name, lambda: self.eval(body.get("value")))

    def _memo(self, kind: str, name: str, compute: Any) -> Any:
        key = (kind, name)
        if key in self._cache:
            return self._cache[key]
        if key in self._evaluating:
            return Unresolved(f"{kind}.{name} (cycle)")
        self._evaluating.add(key)
        try:
            value = compute()
        finally:
            self._evaluating.discard(key)
        self._cache[key] = value
        return value

    # ---- expressions

    def eval(self, value: Any, each: dict[str, Any] | None = None) -> Any:
        """Evaluate a parsed HCL value (literal, list, map or `${...}` expression)."""
        if isinstance(value, dict):
            return {
                self.eval(k, each) if isinstance(k, str) and "${" in k else k: self.eval(v, each)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.eval(item, each) for item in value]
        if not isinstance(value, str) or "${" not in value:
            return value
        parts = _split_templates(value)
        if len(parts) == 1 and parts[0][0]:
            return self._expression(parts[0][1].strip(), each)
        pieces = []
        for is_expression, text in parts:
            piece = self._expression(text.strip(), each) if is_expression else text
            if isinstance(piece, bool) or not isinstance(piece, str | int | float):
                return self._unresolved(value)
            pieces.append(str(piece))
        return "".join(pieces)

    def _unresolved(self, text: str) -> Unresolved:
        refs = []
        for match in _RESOURCE_REF.findall(text):
            refs.append(self.prefix + match)
        return Unresolved(text, tuple(dict.fromkeys(refs)))

    def _expression(self, text: str, each: dict[str, Any] | None) -> Any:
        if text in ("true", "false"):
            return text == "true"
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if text == "null":
            return None
        if text.startswith('"') and text.endswith('"') and text.count('"') == 2:
            return text[1:-1]
        if not _PATH.match(text):
            return self._unresolved(text)
        segments = _segments(text)
        root = segments[0]
        rest: list[str | int] = segments[1:]
        if root == "var" and rest:
            value = self.var(str(rest[0]))
            rest = rest[1:]
        elif root == "local" and rest:
            value = self.local(str(rest[0]))
            rest = rest[1:]
        elif root == "each" and rest:
            value = (each or {}).get(str(rest[0]), Unresolved(f"each.{rest[0]}"))
            rest = rest[1:]
        elif root == "module" and len(rest) >= 2 and rest[0] in self.children:
            value = self.children[str(rest[0])].output(str(rest[1]))
            rest = rest[2:]
        elif root == "path":
            return str(self.path)
        elif root == "data" and len(rest) >= 2:
            value = Ref(f"{self.prefix}data.{rest[0]}.{rest[1]}")
            rest = rest[2:]
        elif isinstance(root, str) and root.startswith("aws_") and rest:
            value = Ref(f"{self.prefix}{root}.{rest[0]}")
            rest = rest[1:]
        else:
            return self._unresolved(text)
        return self._navigate(value, rest, each)

    def _navigate(self, value: Any, rest: list[str | int], each: dict[str, Any] | None) -> Any:
        for segment in rest:
            if isinstance(segment, str) and segment.startswith("$"):
                segment = self._expression(segment[1:], each)  # e.g. [each.key]
                if isinstance(value, Ref):
                    continue  # an instance index: all instances share one template
            if isinstance(value, Ref):
                value = Ref(value.address, (*value.attr, str(segment)))
            elif _indexable(value, segment):
                value = value[segment]
            elif isinstance(value, Unresolved):
                return value
            else:
                return Unresolved(f"{value!r}[{segment!r}]")
        return value

    # ---- resources

    def resources(self) -> Iterator[Resource]:
        """Every resource of this module and of the modules it calls, with for_each expanded."""
        for key, body in self.source.resources.items():
            yield from Resource.instances(self, key, body)
        for child in self.children.values():
            yield from child.resources()

    def data_sources(self) -> Iterator[Resource]:
        """Every data source of this module and of the modules it calls."""
        for key, body in self.source.data.items():
            yield from Resource.instances(self, key, body, data=True)
        for child in self.children.values():
            yield from child.data_sources()

    def instances(self) -> Iterator[Instance]:
        """This module instance and every module instance below it."""
        yield self
        for child in self.children.values():
            yield from child.instances()


@dataclass
class Resource:
    """One resource (or data source) instance of a module instance."""

    module: Instance
    type: str
    name: str
    body: dict[str, Any]
    each: dict[str, Any] | None = None
    key: str | None = None
    is_data: bool = False

    @classmethod
    def instances(
        cls, module: Instance, key: str, body: dict[str, Any], data: bool = False
    ) -> Iterator[Resource]:
        rtype, name = key.split(".", 1)
        if "for_each" not in body:
            yield cls(module, rtype, name, body, is_data=data)
            return
        over = module.eval(body["for_each"])
        if isinstance(over, dict):
            for each_key, each_value in over.items():
                yield cls(
                    module,
                    rtype,
                    name,
                    body,
                    {"key": each_key, "value": each_value},
                    str(each_key),
                    data,
                )
        elif isinstance(over, list):
            for item in over:
                yield cls(module, rtype, name, body, {"key": item, "value": item}, str(item), data)
        elif isinstance(over, Ref):
            yield cls(
                module, rtype, name, body, {"key": Unresolved("each.key"), "value": over}, "*", data
            )
        else:
            yield cls(module, rtype, name, body, None, "*", data)

    @property
    def address(self) -> str:
        """Full address without the instance key: module.a.module.b.aws_x.y (or data.aws_x.y)."""
        return f"{self.module.prefix}{'data.' if self.is_data else ''}{self.type}.{self.name}"

    @property
    def label(self) -> str:
        """Address with the instance key, for messages."""
        return self.address + (f"[{self.key!r}]" if self.key is not None else "")

    @property
    def file(self) -> Path:
        """The file that declares it."""
        prefix = "data." if self.is_data else ""
        return self.module.source.files[f"{prefix}{self.type}.{self.name}"]

    def get(self, attribute: str, default: Any = None) -> Any:
        """An attribute, evaluated (with this instance's each.key / each.value)."""
        if attribute not in self.body:
            return default
        return self.module.eval(self.body[attribute], self.each)

    def tags(self) -> dict[str, Any]:
        """The evaluated tags map ({} when absent or unresolvable)."""
        tags = self.get("tags")
        return tags if isinstance(tags, dict) else {}

    def blocks(self, name: str) -> list[dict[str, Any]]:
        """Nested blocks named `name`, static and `dynamic`, each evaluated."""
        found = [
            self.module.eval(block, self.each)
            for block in self.body.get(name, [])
            if isinstance(block, dict)
        ]
        for dynamic in self.body.get("dynamic", []):
            for label, spec in dynamic.items():
                if label == name:
                    for content in spec.get("content", []):
                        found.append(self.module.eval(content, self.each))
        return found


class Model:
    """A root and everything it instantiates, with lookups the policy checks use."""

    def __init__(self, root: Path) -> None:
        self.root = Instance(root)
        self.resources = list(self.root.resources())
        self.data = list(self.root.data_sources())
        self._by_address: dict[str, list[Resource]] = {}
        for item in [*self.resources, *self.data]:
            self._by_address.setdefault(item.address, []).append(item)

    def of_type(self, *types: str) -> list[Resource]:
        """Every resource of these types."""
        return [r for r in self.resources if r.type in types]

    def lookup(self, value: Any) -> list[Resource]:
        """The resource instances a Ref points at ([] for anything else)."""
        if isinstance(value, Ref):
            return self._by_address.get(value.address, [])
        return []

    def refs_in(self, value: Any) -> list[str]:
        """Every resource address a value points at, through lists, maps and Unresolved text."""
        if isinstance(value, Ref):
            return [value.address]
        if isinstance(value, Unresolved):
            return list(value.refs)
        if isinstance(value, list):
            return [ref for item in value for ref in self.refs_in(item)]
        if isinstance(value, dict):
            return [ref for item in value.values() for ref in self.refs_in(item)]
        return []

    def source_dirs(self) -> list[Path]:
        """Every directory this root reads (itself and each module it calls), once."""
        return sorted({instance.path for instance in self.root.instances()})
