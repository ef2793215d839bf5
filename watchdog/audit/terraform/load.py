"""Load a root module (a directory of `.tf` files) into resource instances with evaluated arguments.

Follows what Terraform itself would: variables from `--var-file`s, `terraform.tfvars`,
`*.auto.tfvars` and defaults; locals; `count` and `for_each`; `dynamic` blocks; local modules
(`source = "./..."`, their resources addressed `module.NAME.TYPE.NAME`). Registry and remote modules
are not fetched: they are noted as not followed and their outputs are unknown. Everything is lazy
and memoised, so references between resources resolve in any order; a cycle yields Unknown.
No network, no Terraform binary, no secrets kept (pre-shared key arguments are never evaluated).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from watchdog.audit.terraform.evaluate import Collection, Evaluator, Namespace
from watchdog.audit.terraform.hcl import Attribute, Block, Body, parse_file
from watchdog.audit.terraform.values import AUDITED_TYPES, Resource, Unknown, is_secret
from watchdog.errors import InputError

_BUSY = object()
# The project a google resource lands in when neither it nor the provider names one.
DEFAULT_PROJECT = "provider-project"


PLAN_FIX = "Audit a plan of it instead: terraform plan -out plan.out && terraform show -json plan.out > plan.json."
VALUE_FIX = "Give it a value in a .tfvars file (--var-file), or audit a plan JSON."


class Notes:
    """What the reader could not follow, said once per place (the report shows them as info).

    While an argument is evaluated its file and line are on a stack, so a note raised from deep inside
    an expression (a function not evaluated) is located at the argument that holds it.
    """

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, int], tuple[str, str, str, int, str]] = {}
        self._where: list[tuple[str, int, str]] = []

    def add(self, message: str, file: str = "", line: int = 0, fix: str = VALUE_FIX, obj: str = "terraform") -> None:
        """`obj`: what the note is about (a variable, a module or resource address)."""
        self.items.setdefault((message, file, line), (obj, message, file, line, fix))

    @contextmanager
    def at(self, file: str, line: int, obj: str) -> Iterator[None]:
        self._where.append((file, line, obj))
        try:
            yield
        finally:
            self._where.pop()

    def here(self) -> tuple[str, int, str]:
        """The file, line and owner (resource address...) of the argument being evaluated now."""
        return self._where[-1] if self._where else ("", 0, "terraform")


class Instance:
    """One resource instance: arguments evaluated on demand, computed attributes unknown."""

    def __init__(self, module: Module, block: Block, address: str, env: dict[str, Any]) -> None:
        self.module, self.block, self.address, self.env = module, block, address, env
        self._memo: dict[str, Any] = {}
        self.type = block.labels[0]

    def attr(self, name: str) -> Any:
        if name in self._memo:
            value = self._memo[name]
            return Unknown(f"{self.address}.{name}") if value is _BUSY else value
        self._memo[name] = _BUSY
        value = self._compute(name)
        self._memo[name] = value
        return value

    def _compute(self, name: str) -> Any:
        body = self.block.body
        if is_secret(name):
            return Unknown()
        if name in body.attributes:
            value = self.module.eval_at(self.block.file, body.attributes[name], self.env, self.address)
            if name == "name" and isinstance(value, Unknown) and not value.ref:
                return Unknown(f"{self.address}.name")  # unknown, but references to it still link
            return value
        blocks = self.blocks(name)
        if blocks:
            return blocks
        return computed_attribute(self, name)

    def blocks(self, name: str, body: Body | None = None, env: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Nested blocks of one type, `dynamic` ones expanded, as Terraform's list of objects."""
        body = body if body is not None else self.block.body
        env = env if env is not None else self.env
        out: list[dict[str, Any]] = []
        for child in body.blocks:
            if child.type == name:
                out.append(self.block_value(child.body, env))
            elif child.type == "dynamic" and child.labels == [name]:
                out.extend(self._dynamic(child, env))
        return out

    def _dynamic(self, block: Block, env: dict[str, Any]) -> list[dict[str, Any]]:
        attrs = block.body.attributes
        iterator = block.labels[0]
        if "iterator" in attrs and attrs["iterator"].expr[0] == "ref":
            iterator = attrs["iterator"].expr[1]
        items = (
            self.module.eval_at(self.block.file, attrs["for_each"], env, self.address)
            if "for_each" in attrs
            else Unknown()
        )
        if isinstance(items, Unknown):
            self.module.notes.add(
                f'{self.address}: dynamic "{block.labels[0]}" for_each is unknown before apply; its blocks '
                "are not audited",
                block.file or self.block.file,
                block.line,
                PLAN_FIX,
                self.address,
            )
            return []
        pairs = list(items.items()) if isinstance(items, dict) else list(enumerate(items))
        content = next((b for b in block.body.blocks if b.type == "content"), None)
        if content is None:
            return []
        out = []
        for key, value in pairs:
            inner = dict(env)
            inner[iterator] = {"key": key, "value": value}
            out.append(self.block_value(content.body, inner))
        return out

    def block_value(self, body: Body, env: dict[str, Any]) -> dict[str, Any]:
        value: dict[str, Any] = {}
        for name, attribute in body.attributes.items():
            if is_secret(name):
                continue
            value[name] = self.module.eval_at(self.block.file, attribute, env, self.address)
        kinds = {b.labels[0] if b.type == "dynamic" and b.labels else b.type for b in body.blocks}
        for kind in kinds:
            value[kind] = self.blocks(kind, body, env)
        return value

    def resource(self) -> Resource:
        """Every argument and nested block, evaluated (secrets left out)."""
        body = self.block.body
        values: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for name, attribute in body.attributes.items():
            if name in ("count", "for_each", "depends_on", "provider", "lifecycle") or is_secret(name):
                continue
            values[name] = self.attr(name)
            lines[name] = attribute.line
        for child in body.blocks:
            kind = child.labels[0] if child.type == "dynamic" and child.labels else child.type
            if kind in ("lifecycle", "provisioner", "connection", "timeouts") or kind in values:
                continue
            values[kind] = self.blocks(kind)
            lines.setdefault(kind, child.line)
        for name in computed_names(self.type):
            if name not in values:
                values[name] = self.attr(name)
        return Resource(self.address, self.type, values, self.block.file, self.block.line, lines, self.module.prefix)


def computed_names(rtype: str) -> tuple[str, ...]:
    """Computed attributes the build step reads (so a Resource carries them too)."""
    if rtype == "aws_vpn_connection":
        return (
            "tunnel1_address",
            "tunnel2_address",
            "transit_gateway_attachment_id",
            "id",
            "tunnel1_vgw_inside_address",
            "tunnel1_cgw_inside_address",
            "tunnel2_vgw_inside_address",
            "tunnel2_cgw_inside_address",
        )
    if rtype == "google_compute_ha_vpn_gateway":
        return ("vpn_interfaces", "id", "self_link", "project")
    return ("id", "self_link", "project") if rtype.startswith("google_") else ("id",)


def computed_attribute(instance: Instance, name: str) -> Any:
    """What the configuration alone determines of a computed attribute; else Unknown(address.name)."""
    ref = f"{instance.address}.{name}"
    rtype = instance.type
    generated = Unknown(ref, generated=True)
    if rtype == "aws_vpn_connection" and name.endswith(("_vgw_inside_address", "_cgw_inside_address")):
        cidr = instance.attr(name.split("_")[0] + "_inside_cidr")
        if isinstance(cidr, str):
            try:
                net = ipaddress.ip_network(cidr, strict=False)
                return str(net.network_address + (1 if "_vgw_" in name else 2))
            except ValueError:
                return generated
        return generated
    if rtype == "google_compute_ha_vpn_gateway" and name == "vpn_interfaces":
        return [{"id": i, "ip_address": Unknown(f"{ref}[{i}].ip_address", generated=True)} for i in range(2)]
    if rtype == "google_compute_network" and name in ("id", "self_link"):
        net_name = instance.attr("name")
        project = instance.attr("project")
        if isinstance(project, Unknown) or project is None:
            project = instance.module.provider_project()
        if isinstance(net_name, str) and isinstance(project, str):
            path = f"projects/{project}/global/networks/{net_name}"
            return path if name == "id" else f"https://www.googleapis.com/compute/v1/{path}"
        return generated
    if name == "project" and rtype.startswith("google_"):
        return instance.module.provider_project()
    return generated


class Module:
    """One module instance: its files' blocks and the scope their expressions see."""

    def __init__(
        self,
        directory: Path,
        prefix: str,
        variables: Callable[[str], Any],
        notes: Notes,
        files: list[Path] | None = None,
        parent: Module | None = None,
    ) -> None:
        self.directory, self.prefix, self.notes, self.parent = directory, prefix, notes, parent
        self._variables_in = variables
        self.evaluator = Evaluator(self)
        self.body = Body()
        # Module instances of one source share its parsed files (they are read-only after parsing).
        self._parsed: dict[Path, Body] = parent._parsed if parent is not None else {}
        paths = files if files is not None else sorted(directory.glob("*.tf"))
        for path in paths:
            if path not in self._parsed:
                self._parsed[path] = parse_file(path)
            self.body.blocks.extend(self._parsed[path].blocks)
        self.variables = {b.labels[0]: b for b in self.body.blocks_of("variable") if b.labels}
        self.locals: dict[str, tuple[str, Attribute]] = {}
        for block in self.body.blocks_of("locals"):
            for name, attribute in block.body.attributes.items():
                self.locals[name] = (block.file, attribute)
        self.resources: dict[str, dict[str, Block]] = {}
        for block in self.body.blocks_of("resource"):
            if len(block.labels) == 2:
                self.resources.setdefault(block.labels[0], {})[block.labels[1]] = block
        self.module_blocks = {b.labels[0]: b for b in self.body.blocks_of("module") if b.labels}
        self.outputs = {b.labels[0]: b for b in self.body.blocks_of("output") if b.labels}
        self._memo: dict[str, Any] = {}
        self._collections: dict[str, Collection] = {}
        self._children: dict[str, Any] = {}
        self._modules: dict[str, list[Module]] = {}

    # -- Scope ------------------------------------------------------------------------------

    def note(self, message: str) -> None:
        file, line, obj = self.notes.here()
        fix = "Nothing to do: what depends on it is not checked; a plan JSON has the value."
        self.notes.add(message, file, line, fix, obj)

    def eval_at(
        self, file: str, attribute: Attribute, env: dict[str, Any] | None = None, obj: str = "terraform"
    ) -> Any:
        """An argument's value, with its file, line and owner as the place of any note it raises."""
        with self.notes.at(file, attribute.line, obj):
            return self.evaluator.eval(attribute.expr, env)

    def lookup(self, name: str) -> Any:
        if name == "var":
            return Namespace(lambda n: self._cached(f"var.{n}", lambda: self._variable(n)))
        if name == "local":
            return Namespace(lambda n: self._cached(f"local.{n}", lambda: self._local(n)))
        if name == "module":
            return Namespace(self._module)
        if name == "data":
            return Namespace(lambda t: Namespace(lambda n: Unknown(f"{self.prefix}data.{t}.{n}")))
        if name == "path":
            return {"module": str(self.directory), "root": str(self.directory), "cwd": str(self.directory)}
        if name == "terraform":
            return {"workspace": "default"}
        if name in self.resources:
            return Namespace(lambda n: self._collection(name, n))
        return Unknown(name)

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key in self._memo:
            value = self._memo[key]
            return Unknown(key) if value is _BUSY else value
        self._memo[key] = _BUSY
        value = compute()
        self._memo[key] = value
        return value

    def _variable(self, name: str) -> Any:
        value = self._variables_in(name)
        if value is not _MISSING:
            return value
        block = self.variables.get(name)
        if block is not None and "default" in block.body.attributes:
            return Evaluator(_EmptyScope()).eval(block.body.attributes["default"].expr)
        where = block.file if block else ""
        self.notes.add(
            f"variable {self.prefix}var.{name} has no value (no default, no .tfvars): what depends on it is unknown",
            where,
            block.line if block else 0,
            obj=f"{self.prefix}var.{name}",
        )
        return Unknown(f"var.{name}")

    def _local(self, name: str) -> Any:
        found = self.locals.get(name)
        return self.eval_at(*found) if found is not None else Unknown(f"local.{name}")

    def provider_project(self) -> Any:
        """The google provider's project: this module's own provider block, else its parents'."""
        module: Module | None = self
        while module is not None:
            for block in module.body.blocks_of("provider"):
                if block.labels and block.labels[0] in ("google", "google-beta") and "project" in block.body.attributes:
                    return module.eval_at(block.file, block.body.attributes["project"])
            module = module.parent
        return DEFAULT_PROJECT

    # -- resources ---------------------------------------------------------------------------

    def _collection(self, rtype: str, name: str) -> Any:
        key = f"{rtype}.{name}"
        if name not in self.resources.get(rtype, {}):
            return Unknown(f"{self.prefix}{key}")
        if key not in self._collections:
            block = self.resources[rtype][name]
            address = f"{self.prefix}{key}"
            self._collections[key] = Collection(
                address, lambda: self._cached(f"instances {key}", lambda: self._instances(block, address))
            )
        return self._collections[key]

    def _instances(self, block: Block, address: str) -> dict[Any, Any] | None:
        def make(key: Any, env: dict[str, Any]) -> Instance:
            return Instance(self, block, address if key is None else f"{address}{_key(key)}", env)

        return self._expand(block, make)

    def _expand(self, block: Block, make: Callable[[Any, dict[str, Any]], Any]) -> dict[Any, Any] | None:
        attrs = block.body.attributes
        if "count" in attrs:
            count = self.eval_at(block.file, attrs["count"])
            if isinstance(count, Unknown) or isinstance(count, bool) or not isinstance(count, int | float):
                if block.type == "resource" and block.labels[0] not in AUDITED_TYPES:
                    return None
                self.notes.add(
                    f"{self.prefix}{'.'.join(block.labels)}: count is unknown before apply; not audited",
                    block.file,
                    attrs["count"].line,
                    PLAN_FIX,
                    f"{self.prefix}{'.'.join(block.labels)}",
                )
                return None
            return {i: make(i, {"count": {"index": i}}) for i in range(int(count))}
        if "for_each" in attrs:
            items = self.eval_at(block.file, attrs["for_each"])
            if isinstance(items, Unknown) or not isinstance(items, dict | list):
                if block.type == "resource" and block.labels[0] not in AUDITED_TYPES:
                    return None
                self.notes.add(
                    f"{self.prefix}{'.'.join(block.labels)}: for_each is unknown before apply; not audited",
                    block.file,
                    attrs["for_each"].line,
                    PLAN_FIX,
                    f"{self.prefix}{'.'.join(block.labels)}",
                )
                return None
            pairs = items.items() if isinstance(items, dict) else ((str(v), v) for v in items)
            return {k: make(k, {"each": {"key": k, "value": v}}) for k, v in pairs}
        return {None: make(None, {})}

    # -- modules -----------------------------------------------------------------------------

    def _module(self, name: str) -> Any:
        if name in self._children:
            return self._children[name]
        block = self.module_blocks.get(name)
        if block is None:
            return Unknown(f"{self.prefix}module.{name}")
        source = (
            self.eval_at(block.file, block.body.attributes["source"]) if "source" in block.body.attributes else None
        )
        address = f"{self.prefix}module.{name}"
        if not isinstance(source, str) or not source.startswith(("./", "../")):
            self.notes.add(
                f"{address}: module source {source!r} is not a local path; it was not followed (its resources "
                "are not audited, its outputs are unknown)",
                block.file,
                block.line,
                PLAN_FIX,
                address,
            )
            self._children[name] = Unknown(address)
            return self._children[name]
        directory = (self.directory / source).resolve()
        if not directory.is_dir():
            raise InputError(f"{block.file}:{block.line}: module {name}: {source} is not a directory")

        def make(key: Any, env: dict[str, Any]) -> Module:
            prefix = f"{address}{'' if key is None else _key(key)}."

            def variables(var: str) -> Any:
                if var in block.body.attributes and var not in ("source", "count", "for_each", "version"):
                    return self.eval_at(block.file, block.body.attributes[var], env)
                return _MISSING

            return Module(directory, prefix, variables, self.notes, parent=self)

        instances = self._expand(block, make)
        child: Any = (
            Collection(address, lambda: {k: _ModuleOutputs(m) for k, m in instances.items()})
            if instances
            else Unknown(address)
        )
        if instances is not None and list(instances) == [None]:
            child = _ModuleOutputs(instances[None])
        self._children[name] = child
        self._modules[name] = list((instances or {}).values())
        return child

    def iter_resources(self) -> Iterator[Resource]:
        for rtype, blocks in self.resources.items():
            if rtype not in AUDITED_TYPES:
                continue
            for name in blocks:
                collection = self._collection(rtype, name)
                instances = collection.all() if isinstance(collection, Collection) else None
                for instance in (instances or {}).values():
                    yield instance.resource()
        for name in self.module_blocks:
            self._module(name)
            for child in self._modules.get(name, []):
                yield from child.iter_resources()


class _ModuleOutputs:
    def __init__(self, module: Module) -> None:
        self.module = module

    def attr(self, name: str) -> Any:
        block = self.module.outputs.get(name)
        if block is None or "value" not in block.body.attributes:
            return Unknown(f"{self.module.prefix}{name}")
        return self.module.eval_at(block.file, block.body.attributes["value"])


class _EmptyScope:
    def lookup(self, name: str) -> Any:
        return Unknown(name)

    def note(self, message: str) -> None:
        pass


_MISSING = object()


def _key(key: Any) -> str:
    return f"[{key}]" if isinstance(key, int) else f'["{key}"]'


def load_var_files(paths: list[Path]) -> dict[str, Any]:
    """`.tfvars` files (HCL attributes; later files win), evaluated without any scope."""
    values: dict[str, Any] = {}
    for path in paths:
        if path.suffix == ".json":
            import json

            try:
                values.update(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: not a readable JSON var file: {exc}") from None
            continue
        body = parse_file(path)
        evaluator = Evaluator(_EmptyScope())
        for name, attribute in body.attributes.items():
            values[name] = evaluator.eval(attribute.expr)
    return values


def load_root(path: Path, var_files: list[Path], notes: Notes) -> list[Resource]:
    """Every resource instance of the root module at `path` (a directory, or one `.tf` file)."""
    if path.is_dir():
        directory, files = path, None
        auto = sorted([*directory.glob("terraform.tfvars"), *directory.glob("*.auto.tfvars")])
    else:
        directory, files, auto = path.parent, [path], []
    if files is None and not any(directory.glob("*.tf")):
        raise InputError(f"{path}: no .tf files in this directory")
    tfvars = load_var_files([*auto, *var_files])

    def variables(name: str) -> Any:
        return tfvars.get(name, _MISSING)

    module = Module(directory, "", variables, notes, files)
    return list(module.iter_resources())
