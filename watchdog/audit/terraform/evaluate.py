"""A small evaluator of Terraform expressions, small enough to read in one sitting.

Literals, templates, references (variables, locals, count/each, resources, modules, data sources),
arithmetic and comparisons, conditionals, `for` expressions, splats and the handful of functions
VPN configurations use. Anything it cannot know becomes `Unknown`, never a guess; an unknown
function is Unknown too, noted once so the report can say what was not evaluated. No I/O.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from typing import Any, Protocol

from watchdog.audit.terraform.hcl import Expr
from watchdog.audit.terraform.values import Unknown, known


class Scope(Protocol):
    def lookup(self, name: str) -> Any:
        """The value of a root name (`var`, `local`, `count`, an iterator, a resource type...)."""
        ...

    def note(self, message: str) -> None: ...


class Namespace:
    """A lazily filled mapping a reference traverses: `var.x`, `aws_vpn_connection.vpn`."""

    def __init__(self, get: Callable[[str], Any], ref: str | None = None) -> None:
        self._get = get
        self.ref = ref

    def attr(self, name: str) -> Any:
        return self._get(name)


class Collection:
    """A resource or module with count/for_each: indexable by number or key; or a single instance."""

    def __init__(self, ref: str, instances: Callable[[], dict[Any, Any] | None]) -> None:
        self.ref = ref
        self._instances = instances

    def all(self) -> dict[Any, Any] | None:
        return self._instances()


class Evaluator:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def eval(self, expr: Expr, local: dict[str, Any] | None = None) -> Any:
        try:
            return self._eval(expr, local or {})
        except (TypeError, ValueError, ZeroDivisionError, KeyError, IndexError, AttributeError, RecursionError):
            return Unknown()

    def _eval(self, e: Expr, env: dict[str, Any]) -> Any:  # noqa: C901 - one dispatch over expression kinds
        kind = e[0]
        if kind == "lit":
            return e[1]
        if kind == "opaque":
            return Unknown()
        if kind == "tmpl":
            parts = [p if isinstance(p, str) else self._eval(p, env) for p in e[1]]
            if len(parts) == 1:
                return parts[0]  # "${x}" is x itself, whatever its type
            if not all(known(p) for p in parts):
                return Unknown()
            return "".join(_to_string(p) for p in parts)
        if kind == "ref":
            name = e[1]
            if name in env:
                return env[name]
            return self.scope.lookup(name)
        if kind == "attr":
            return get_attr(self._eval(e[1], env), e[2])
        if kind == "index":
            return get_index(self._eval(e[1], env), self._eval(e[2], env))
        if kind == "splat":
            return self._splat(self._eval(e[1], env), e[2], env)
        if kind == "call":
            args = [self._eval(a, env) for a in e[2]]
            if e[3] and args and isinstance(args[-1], list):
                args = args[:-1] + list(args[-1])
            return self._call(e[1], args, e[2], env)
        if kind == "bin":
            return _binary(e[1], self._eval(e[2], env), self._eval(e[3], env))
        if kind == "un":
            value = self._eval(e[2], env)
            if isinstance(value, Unknown):
                return Unknown()
            return (not value) if e[1] == "!" else -value
        if kind == "cond":
            cond = self._eval(e[1], env)
            if isinstance(cond, Unknown):
                return Unknown()
            return self._eval(e[2] if cond else e[3], env)
        if kind == "tuple":
            return [self._eval(x, env) for x in e[1]]
        if kind == "object":
            out: dict[str, Any] = {}
            for key_expr, value_expr in e[1]:
                key = self._eval(key_expr, env)
                if isinstance(key, Unknown):
                    return Unknown()
                out[_to_string(key)] = self._eval(value_expr, env)
            return out
        if kind in ("for_t", "for_o"):
            return self._for(e, env)
        raise ValueError(kind)

    def _splat(self, base: Any, ops: tuple[tuple[str, Any], ...], env: dict[str, Any]) -> Any:
        if isinstance(base, Collection):
            items = base.all()
            base = list(items.values()) if items is not None else Unknown()
        if isinstance(base, Unknown):
            return Unknown()
        items_list = base if isinstance(base, list) else ([] if base is None else [base])
        out = []
        for item in items_list:
            value = item
            for op, arg in ops:
                value = get_attr(value, arg) if op == "attr" else get_index(value, self._eval(arg, env))
            out.append(value)
        return out

    def _for(self, e: Expr, env: dict[str, Any]) -> Any:
        is_object = e[0] == "for_o"
        key_var, value_var, coll_expr = e[1], e[2], e[3]
        collection = self._eval(coll_expr, env)
        if isinstance(collection, Collection):
            collection = collection.all()
        if collection is None or isinstance(collection, Unknown):
            return Unknown()
        pairs = list(collection.items()) if isinstance(collection, dict) else list(enumerate(collection))
        cond = e[6] if is_object else e[5]
        out_list: list[Any] = []
        out_dict: dict[str, Any] = {}
        for key, value in pairs:
            inner = dict(env)
            inner[value_var] = value
            if key_var:
                inner[key_var] = key
            if cond is not None:
                keep = self._eval(cond, inner)
                if isinstance(keep, Unknown):
                    return Unknown()
                if not keep:
                    continue
            if is_object:
                k = self._eval(e[4], inner)
                if isinstance(k, Unknown):
                    return Unknown()
                v = self._eval(e[5], inner)
                if e[7]:
                    out_dict.setdefault(_to_string(k), []).append(v)
                else:
                    out_dict[_to_string(k)] = v
            else:
                out_list.append(self._eval(e[4], inner))
        return out_dict if is_object else out_list

    def _call(self, name: str, args: list[Any], raw: tuple[Expr, ...], env: dict[str, Any]) -> Any:
        if name == "try":
            for arg_expr in raw:
                value = self.eval(arg_expr, env)
                if not isinstance(value, Unknown) or value.ref:
                    return value
            return Unknown()
        if name == "can":
            return not isinstance(self.eval(raw[0], env), Unknown) if raw else False
        fn = FUNCTIONS.get(name.split("::")[-1])
        if fn is None:
            self.scope.note(f"function {name}() is not evaluated; its results are treated as unknown")
            return Unknown()
        if name in _LAZY_OK:
            return fn(*args)
        if not all(known(a) for a in args):
            return Unknown()
        return fn(*args)


# -- traversal ------------------------------------------------------------------------------


def get_attr(value: Any, name: str) -> Any:
    if isinstance(value, Unknown):
        return value.attr(name)
    if isinstance(value, Namespace):
        return value.attr(name)
    if isinstance(value, Collection):
        items = value.all()
        if items is None:
            return Unknown(f"{value.ref}.{name}")
        if None in items and len(items) == 1:
            return get_attr(items[None], name)
        return Unknown()  # attribute of a counted resource without an index
    if isinstance(value, dict):
        return value[name] if name in value else Unknown()
    if hasattr(value, "attr"):
        return value.attr(name)
    return Unknown()


def get_index(value: Any, key: Any) -> Any:
    if isinstance(value, Unknown):
        return value.index(key)
    if isinstance(key, Unknown):
        return Unknown()
    if isinstance(value, Collection):
        items = value.all()
        if items is None:
            return Unknown(value.ref).index(key)
        if isinstance(key, float) and key.is_integer():
            key = int(key)
        return items[key] if key in items else Unknown()
    if isinstance(value, list):
        return value[int(key)]
    if isinstance(value, dict):
        return value[_to_string(key)] if _to_string(key) in value else Unknown()
    if hasattr(value, "attr") and isinstance(key, str):
        return value.attr(key)
    return Unknown()


# -- operators ------------------------------------------------------------------------------


def _binary(op: str, left: Any, right: Any) -> Any:
    if op == "&&":
        if left is False or right is False:
            return False
    if op == "||":
        if left is True or right is True:
            return True
    if isinstance(left, Unknown) or isinstance(right, Unknown):
        if op in ("==", "!=") and isinstance(left, Unknown) and isinstance(right, Unknown):
            if left.ref and left.ref == right.ref:
                return op == "=="
        return Unknown()
    if op in ("+", "-", "*", "/", "%"):
        a, b = _number(left), _number(right)
        if op == "+":
            return _tidy(a + b)
        if op == "-":
            return _tidy(a - b)
        if op == "*":
            return _tidy(a * b)
        if op == "/":
            return _tidy(a / b)
        return _tidy(math.fmod(a, b))
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in ("<", ">", "<=", ">="):
        a, b = _number(left), _number(right)
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    if op == "&&":
        return bool(left) and bool(right)
    if op == "||":
        return bool(left) or bool(right)
    raise ValueError(op)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return _tidy(float(value))
    raise TypeError(f"not a number: {type(value).__name__}")


def _tidy(value: float | int) -> float | int:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value)
    raise TypeError("not a string")


# -- functions ------------------------------------------------------------------------------


def _lookup(mapping: Any, key: Any, *default: Any) -> Any:
    if isinstance(mapping, Unknown) or isinstance(key, Unknown):
        return Unknown()
    key = _to_string(key)
    if isinstance(mapping, dict) and key in mapping:
        return mapping[key]
    if hasattr(mapping, "attr") and not isinstance(mapping, dict):
        return mapping.attr(key)
    if default:
        return default[0]
    raise KeyError(key)


def _range(*args: Any) -> list[int | float]:
    nums = [_number(a) for a in args]
    start, stop, step = (0, nums[0], 1) if len(nums) == 1 else (nums[0], nums[1], nums[2] if len(nums) > 2 else 1)
    out: list[int | float] = []
    value = start
    while (step > 0 and value < stop) or (step < 0 and value > stop):
        out.append(_tidy(value))
        value += step
        if len(out) > 10000:
            raise ValueError("range too long")
    return out


def _element(items: list[Any], index: Any) -> Any:
    return items[int(_number(index)) % len(items)]


def _cidrhost(prefix: str, host: Any) -> str:
    net = ipaddress.ip_network(prefix, strict=False)
    n = int(_number(host))
    base = net.broadcast_address + 1 + n if n < 0 else net.network_address + n
    if base not in net:
        raise ValueError("host number out of range")
    return str(base)


def _cidrsubnet(prefix: str, newbits: Any, netnum: Any) -> str:
    net = ipaddress.ip_network(prefix, strict=False)
    subnets = net.prefixlen + int(_number(newbits))
    size = 2 ** (net.max_prefixlen - subnets)
    start = int(net.network_address) + int(_number(netnum)) * size
    sub = ipaddress.ip_network((start, subnets))
    if not sub.subnet_of(net):  # type: ignore[arg-type]
        raise ValueError("netnum out of range")
    return str(sub)


def _format(fmt: str, *args: Any) -> str:
    out, i, arg = [], 0, 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            if verb == "%":
                out.append("%")
            elif verb in "sdv":
                value = args[arg]
                arg += 1
                out.append(str(int(_number(value))) if verb == "d" else _to_string(value))
            else:
                raise ValueError(f"format verb %{verb}")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _merge(*maps: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in maps:
        if isinstance(m, dict):
            out.update(m)
        elif m is not None:
            raise TypeError("merge of a non-object")
    return out


def _coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None and a != "":
            return a
    raise ValueError("no non-null argument")


def _length(value: Any) -> int:
    if isinstance(value, list | dict | str):
        return len(value)
    raise TypeError("length of a scalar")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lookup": _lookup,
    "range": _range,
    "floor": lambda x: math.floor(_number(x)),
    "ceil": lambda x: math.ceil(_number(x)),
    "abs": lambda x: abs(_number(x)),
    "max": lambda *xs: _tidy(max(_number(x) for x in xs)),
    "min": lambda *xs: _tidy(min(_number(x) for x in xs)),
    "length": _length,
    "element": _element,
    "concat": lambda *ls: [x for lst in ls for x in lst],
    "flatten": _flatten,
    "format": _format,
    "join": lambda sep, items: sep.join(_to_string(i) for i in items),
    "split": lambda sep, text: text.split(sep),
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "replace": lambda s, a, b: s.replace(a, b),
    "tostring": _to_string,
    "tonumber": _number,
    "tobool": lambda x: x if isinstance(x, bool) else {"true": True, "false": False}[x],
    "tolist": lambda x: list(x),
    "toset": lambda x: sorted(set(x), key=str) if isinstance(x, list) else x,
    "tomap": lambda x: dict(x),
    "keys": lambda m: sorted(m),
    "values": lambda m: [m[k] for k in sorted(m)],
    "merge": _merge,
    "contains": lambda items, v: v in items,
    "coalesce": _coalesce,
    "zipmap": lambda ks, vs: dict(zip((_to_string(k) for k in ks), vs, strict=True)),
    "cidrhost": _cidrhost,
    "cidrsubnet": _cidrsubnet,
    "distinct": lambda items: list(dict.fromkeys(items)),
}
# Functions whose result is still useful with unknown elements (they only move values around).
_LAZY_OK = {"lookup", "element", "concat", "flatten", "tolist", "merge", "length", "zipmap", "values"}
