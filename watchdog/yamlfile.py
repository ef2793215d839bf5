"""Read a YAML file the daemon is given (the config, the web config) without trusting it.

Every way a file can be hostile or broken ends in one `ConfigError` naming the file and, where there is
one, the key path or line: too large (checked before reading, and the read itself is bounded, so
`-c /dev/zero` stops at the cap), not UTF-8 (UTF-16 and UTF-32 are named), invalid YAML, nested too
deep, an alias bomb or an alias that contains itself, integers too long to convert, duplicate keys
(PyYAML silently keeps the last one). Never a traceback, never a MemoryError or RecursionError.
This module knows nothing about the keys a file may contain: callers validate the mapping it returns.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from watchdog.errors import ConfigError

MAX_BYTES = 1 << 20  # a real config is a few kB; 1 MiB is thousands of probes
MAX_DEPTH = 64  # nesting of mappings and lists, aliases expanded; a config needs about 5
MAX_NODES = 1 << 19  # values after expanding aliases: more than any alias-free file under MAX_BYTES
MAX_NUMBER_CHARS = 100  # an integer literal; Python refuses to convert past 4,300 digits

_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def read_yaml_file(path: str | os.PathLike[str], kind: str = "config") -> dict[str, Any]:
    """The top-level mapping of the YAML file at `path` ({} when empty); `kind` names it in errors."""
    return parse_yaml(read_text(path, kind), str(path))


def read_text(path: str | os.PathLike[str], kind: str = "config") -> str:
    """At most MAX_BYTES of UTF-8 text; larger files are refused without reading them."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_BYTES:
                raise ConfigError(f"{path}: {kind} file too large: {info.st_size} bytes, at most {_limit()}")
            data = f.read(MAX_BYTES + 1)  # bounded: a device or pipe may never end
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {kind}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: {kind} file too large: more than {_limit()}")
    return decode(data, str(path))


def decode(data: bytes, source: str) -> str:
    """UTF-8 (a UTF-8 byte-order mark is fine); anything else is named so the fix is obvious."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise ConfigError(f"{source}: the file is {name} text: save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ConfigError(
            f"{source}: not UTF-8 at line {line}, column {column} (byte 0x{data[exc.start]:02x}): "
            "save the file as UTF-8"
        ) from None


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse one YAML document into plain Python values, within the limits above."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text, source)
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_tree(node, source)
        raw = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or str(exc)
        if exc.context and problem.startswith("but "):  # "expected a single document..., but found another"
            problem = f"{exc.context}, {problem}"
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        hint = " (a binary file, or UTF-16 without a byte-order mark?)" if exc.character in (0, "\0") else ""
        raise ConfigError(
            f"{source}: invalid YAML at line {line}, column {column}: character {what} is not allowed{hint}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    except (ValueError, OverflowError) as exc:  # a constructor PyYAML did not guard
        raise ConfigError(f"{source}: invalid value: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}")
    return raw


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses nesting past MAX_DEPTH while composing (the composer recurses)."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self._source = source
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # PyYAML stubs leave it untyped
                raise ConfigError(
                    f"{self._source}: nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}, "
                    f"column {mark.column + 1}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:  # 2024-02-30 matches the timestamp pattern, not the calendar
            raise _at(self._source, "", node, f"invalid date {node.value!r}: {exc}") from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _check_tree(root: Node, source: str) -> None:
    """Walk the node graph once (iteratively; aliases make it a DAG or worse): duplicate keys,
    over-long integers, and the size and depth the document has once its aliases are expanded."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes when expanded, depth)
    active: set[int] = set()
    stack: list[tuple[Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, leaving = stack.pop()
        key = id(node)
        if leaving:
            active.discard(key)
            children = _children(node)
            size = 1 + sum(done[id(c)][0] for c in children)
            depth = 1 + max((done[id(c)][1] for c in children), default=0)
            if size > MAX_NODES:
                raise _at(source, path, node, f"more than {MAX_NODES} values once aliases are expanded")
            if depth > MAX_DEPTH:
                raise _at(source, path, node, f"nested deeper than {MAX_DEPTH} levels once aliases are expanded")
            done[key] = (size, depth)
            continue
        if key in done:
            continue
        if key in active:
            raise _at(source, path, node, "an alias refers to a value that contains it")
        if isinstance(node, ScalarNode):
            if node.tag == _INT_TAG and len(node.value) > MAX_NUMBER_CHARS:
                raise _at(
                    source, path, node, f"number too long ({len(node.value)} characters, at most {MAX_NUMBER_CHARS})"
                )
            done[key] = (1, 0)
            continue
        active.add(key)
        stack.append((node, path, True))
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], Node] = {}
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                name = name if name.isprintable() else repr(name)  # the message stays one line
                child = f"{path}.{name}" if path else name
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    first = seen.setdefault((key_node.tag, key_node.value), key_node)
                    if first is not key_node:
                        raise ConfigError(
                            f"{source}: {child}: duplicate key at line {key_node.start_mark.line + 1} "
                            f"(first at line {first.start_mark.line + 1})"
                        )
                stack.append((key_node, child, False))
                stack.append((value_node, child, False))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, f"{path}[{i}]", False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _at(source: str, path: str, node: Node, message: str) -> ConfigError:
    where = path or f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"
    return ConfigError(f"{source}: {where}: {message}")


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - text.rfind("\n", 0, index)


def _limit() -> str:
    return f"{MAX_BYTES // (1 << 20)} MiB" if MAX_BYTES % (1 << 20) == 0 else f"{MAX_BYTES} bytes"
