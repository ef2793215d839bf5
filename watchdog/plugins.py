"""Plug-in registration: each config class maps to one typed factory that imports its module lazily.

The config union (`watchdog.config.ExporterConfig`, `ProbeConfig`) is the one list of plug-in types:
its members' `type:` literals are the names, and `exporters/registry.py` and `probes/registry.py`
register one factory per member. A member without a factory fails a test, not a user's start-up.
Nothing here imports a plug-in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, get_args

from pydantic import BaseModel

from watchdog.errors import WatchdogError

T = TypeVar("T")


def members(union: object) -> tuple[type[BaseModel], ...]:
    """The config classes of an `Annotated[Union[...], Field(discriminator="type")]`."""
    inner = get_args(union)[0] if get_args(union) else union
    return tuple(get_args(inner))


def type_name(config_class: type[BaseModel]) -> str:
    """The `type:` name a config class is selected by (its `type` field's Literal)."""
    (name,) = get_args(config_class.model_fields["type"].annotation)
    return str(name)


def type_names(union: object) -> tuple[str, ...]:
    return tuple(type_name(member) for member in members(union))


class Registry(Generic[T]):
    """config class -> factory building the plug-in `T` for one config entry."""

    def __init__(self, kind: str, factories: Mapping[type[BaseModel], Callable[..., T]]) -> None:
        self.kind = kind
        self.factories = dict(factories)

    def build(self, config: BaseModel, **options: Any) -> T:
        factory = self.factories.get(type(config))
        if factory is None:  # a programming error: the completeness test keeps this from shipping
            raise WatchdogError(f"no {self.kind} plug-in registered for {type(config).__name__}")
        return factory(config, **options)

    def missing(self, union: object) -> list[str]:
        """Type names of the union that have no factory (empty when complete)."""
        return [type_name(m) for m in members(union) if m not in self.factories]
