"""Parse `.tf` / `.tfvars` files with python-hcl2's grammar into a small expression tree of our own.

python-hcl2's dict output renders every expression back to a `${...}` string that would have to be
parsed again; its Lark parse tree already holds the structure, with line numbers, so we lower that
tree once into plain tuples (`Expr`) that `evaluate` walks. Only this module knows the grammar's
rule names. A file that does not parse raises InputError naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from watchdog.errors import InputError

Node = Tree[Token]  # the parse trees this module walks (leaves are tokens)

# An expression: a tuple whose first item names its kind (see `_expr`).
Expr = tuple[Any, ...]


@dataclass
class Attribute:
    name: str
    expr: Expr
    line: int


@dataclass
class Block:
    type: str
    labels: list[str]
    body: Body
    line: int
    file: str = ""


@dataclass
class Body:
    attributes: dict[str, Attribute] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def blocks_of(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.type == kind]


def parse_file(path: Path) -> Body:
    """One file's top-level body; every block remembers the file it came from."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    body = parse_text(text, str(path))
    for block in body.blocks:
        block.file = str(path)
    return body


def parse_text(text: str, name: str = "<string>") -> Body:
    import hcl2

    try:
        tree = hcl2.parses_to_tree(text)
    except UnexpectedInput as exc:
        # Lark's own message quotes the offending token, which may be a secret: say only where.
        line = exc.line if isinstance(exc.line, int) and exc.line > 0 else text.count("\n") + 1
        column = f":{exc.column}" if isinstance(exc.column, int) and exc.column > 0 else ""
        what = "unexpected end of file" if isinstance(exc, UnexpectedEOF) or exc.line < 0 else "unexpected input"
        if isinstance(exc, UnexpectedCharacters):
            what = "unexpected character"
        raise InputError(f"{name}:{line}{column}: not valid HCL ({what})") from None
    except LarkError:
        raise InputError(f"{name}: not valid HCL") from None
    try:
        return _body(tree.children[0])
    except _Unsupported as exc:  # only a block label can get here: the block cannot be addressed
        raise InputError(f"{name}:{exc.line}: unsupported HCL: {exc}") from None


class _Unsupported(Exception):
    def __init__(self, message: str, line: int | str = "?") -> None:
        super().__init__(message)
        self.line = line


def _line(node: Node | Token) -> int:
    if isinstance(node, Token):
        return node.line or 0
    return getattr(node.meta, "line", 0) or 0


def _trees(node: Node) -> list[Node]:
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _name(node: Node) -> str:
    """An identifier, keyword or literal used as a name (`for_each`, `in`, `true` are legal names)."""
    if node.data == "string":
        return _plain_string(node)
    token = node.children[0]
    return str(token)


def _plain_string(node: Node) -> str:
    parts = _string_parts(node)
    if any(not isinstance(p, str) for p in parts):
        raise _Unsupported("a block label cannot hold an interpolation", _line(node))
    return "".join(parts)  # type: ignore[arg-type]


def _body(node: Node) -> Body:
    body = Body()
    for child in _trees(node):
        if child.data == "attribute":
            kids = _trees(child)
            name = _name(kids[0])
            body.attributes[name] = Attribute(name, _safe_expr(kids[-1]), _line(child))
        elif child.data == "block":
            kids = _trees(child)
            head, inner = kids[:-1], kids[-1]
            body.blocks.append(Block(_name(head[0]), [_name(k) for k in head[1:]], _body(inner), _line(child)))
    return body


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt == "u" and i + 5 < len(text) + 1:
                try:
                    out.append(chr(int(text[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
        out.append(ch)
        i += 1
    return "".join(out)


def _string_parts(node: Node) -> list[str | Expr]:
    parts: list[str | Expr] = []
    for part in node.children:
        if not isinstance(part, Tree):
            continue  # the quotes
        inner = part.children[0]
        if isinstance(inner, Token):
            text = str(inner)
            if inner.type in ("ESCAPED_INTERPOLATION", "ESCAPED_DIRECTIVE"):
                text = text[1:]  # $${ -> ${ , %%{ -> %{
            else:
                text = _unescape(text)
            if parts and isinstance(parts[-1], str):
                parts[-1] += text
            else:
                parts.append(text)
        elif inner.data == "interpolation":
            parts.append(_expr(_trees(inner)[0]))
        else:
            raise _Unsupported("template directives (%{if}/%{for}) are not evaluated", _line(inner))
    return parts


def _safe_expr(node: Node) -> Expr:
    """Valid HCL we do not evaluate (template directives, ...) is an unknown value, not an input error."""
    try:
        return _expr(node)
    except _Unsupported as exc:
        return ("opaque", str(exc))


def _expr(node: Node | Token) -> Expr:  # noqa: C901 - one dispatch over the grammar's expression rules
    if isinstance(node, Token):
        raise _Unsupported(f"unexpected token {node!s}", _line(node))
    kind = node.data
    kids = _trees(node)
    if kind == "expr_term":
        if not kids:
            raise _Unsupported("empty expression", _line(node))
        return _expr(kids[0])
    if kind == "int_lit":
        return ("lit", int(str(node.children[0])))
    if kind == "float_lit":
        return ("lit", float(str(node.children[0])))
    if kind == "literal_value":
        return ("lit", {"true": True, "false": False, "null": None}[str(node.children[0])])
    if kind == "string":
        parts = _string_parts(node)
        if not parts:
            return ("lit", "")
        if len(parts) == 1 and isinstance(parts[0], str):
            return ("lit", parts[0])
        return ("tmpl", tuple(parts))
    if kind in ("heredoc_template", "heredoc_template_trim"):
        return _heredoc(str(node.children[0]), kind.endswith("trim"), _line(node))
    if kind in ("identifier", "keyword"):
        return ("ref", str(node.children[0]))
    if kind == "get_attr_expr_term":
        return ("attr", _expr(kids[0]), _name(_trees(kids[1])[0]))
    if kind == "index_expr_term":
        return ("index", _expr(kids[0]), _index(kids[1]))
    if kind in ("attr_splat_expr_term", "full_splat_expr_term"):
        ops: list[tuple[str, Any]] = []
        for op in _trees(kids[1]):
            if op.data == "get_attr":
                ops.append(("attr", _name(_trees(op)[0])))
            else:
                ops.append(("index", _index(op)))
        return ("splat", _expr(kids[0]), tuple(ops))
    if kind == "function_call":
        names = [k for k in kids if k.data == "identifier"]
        args = next((k for k in kids if k.data == "arguments"), None)
        arg_exprs = tuple(_expr(a) for a in _trees(args)) if args is not None else ()
        expand = args is not None and any(isinstance(t, Token) and t.type == "ELLIPSIS" for t in args.children)
        return ("call", "::".join(str(n.children[0]) for n in names), arg_exprs, expand)
    if kind == "binary_op":
        left = _expr(kids[0])
        term = kids[1]
        op_node, right = _trees(term)
        return ("bin", str(op_node.children[0]), left, _expr(right))
    if kind == "unary_op":
        return ("un", str(node.children[0]), _expr(kids[0]))
    if kind == "conditional":
        return ("cond", _expr(kids[0]), _expr(kids[1]), _expr(kids[2]))
    if kind == "tuple":
        return ("tuple", tuple(_expr(k) for k in kids))
    if kind == "object":
        items = []
        for elem in kids:
            key_node, value_node = _trees(elem)
            key_inner = _trees(key_node)[0]
            items.append((_object_key(key_inner), _expr(value_node)))
        return ("object", tuple(items))
    if kind in ("for_tuple_expr", "for_object_expr"):
        return _for(node, kind == "for_object_expr")
    if kind == "template_string":
        return ("lit", _unescape(str(node.children[0])[2:-2]))
    raise _Unsupported(f"expression {kind}", _line(node))


def _object_key(node: Node) -> Expr:
    """A bare word key is a string (`{a = 1}`); `(a)` or any other expression is evaluated."""
    if node.data == "keyword":
        return ("lit", str(node.children[0]))
    if node.data == "expr_term":
        inner = _trees(node)
        if len(inner) == 1 and inner[0].data == "identifier" and len(node.children) == 1:
            return ("lit", str(inner[0].children[0]))
    return _expr(node)


def _index(node: Node) -> Expr:
    if node.data == "short_index":
        token = next(t for t in node.children if isinstance(t, Token) and t.type == "INT_LITERAL")
        return ("lit", int(str(token)))
    return _expr(_trees(node)[0])


def _for(node: Node, is_object: bool) -> Expr:
    kids = _trees(node)
    intro = kids[0]
    intro_kids = _trees(intro)
    names = [str(k.children[0]) for k in intro_kids if k.data == "identifier"]
    collection = _expr(intro_kids[-1])
    key_var, value_var = (names[0], names[1]) if len(names) == 2 else (None, names[0])
    rest = kids[1:]
    cond: Expr | None = None
    if rest and rest[-1].data == "for_cond":
        cond = _expr(_trees(rest[-1])[0])
        rest = rest[:-1]
    if is_object:
        group = any(isinstance(t, Token) and t.type == "ELLIPSIS" for t in node.children)
        return ("for_o", key_var, value_var, collection, _expr(rest[0]), _expr(rest[1]), cond, group)
    return ("for_t", key_var, value_var, collection, _expr(rest[0]), cond)


def _heredoc(raw: str, trim: bool, line: int) -> Expr:
    lines = raw.split("\n")
    body = lines[1:-2] if len(lines) >= 3 else []
    if trim:
        indents = [len(x) - len(x.lstrip()) for x in body if x.strip()]
        cut = min(indents, default=0)
        body = [x[cut:] for x in body]
    text = "\n".join(body) + ("\n" if body else "")
    if "${" in text or "%{" in text:
        return ("opaque", "a heredoc template")
    return ("lit", text)
