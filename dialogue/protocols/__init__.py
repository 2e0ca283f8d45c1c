"""Protocols decide, for a turn, which children to create and when a branch stops. Each is one
module: its config (a pydantic model whose `name` is the protocol's) and its class, a `Protocol`
whose `config_class` is that config. This package finds them, so adding a protocol touches its
module, its YAML (`conf/protocol/`), its tests and docs, and nothing else."""

import importlib
import pkgutil
from typing import Annotated, Union

from pydantic import Field

from dialogue.protocols.base import ChildSpec, Protocol


def _registered() -> dict[str, type[Protocol]]:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            # a protocol is defined in its module and names its config (a Delegating one names none)
            defined_here = isinstance(value, type) and value.__module__ == module.__name__
            if defined_here and issubclass(value, Protocol) and vars(value).get("config_class") is not None:
                found[value.name] = value
    return found


# The one list of protocols: name -> class (its config is `config_class`); everything else is derived from it.
REGISTRY: dict[str, type[Protocol]] = _registered()
PROTOCOL_CONFIGS = {name: cls.config_class for name, cls in REGISTRY.items()}
ProtocolConfig = Annotated[Union[tuple(PROTOCOL_CONFIGS.values())], Field(discriminator="name")]  # noqa: UP007


def make_protocol(config) -> Protocol:
    return REGISTRY[config.name](config)


__all__ = ["PROTOCOL_CONFIGS", "REGISTRY", "ChildSpec", "Protocol", "ProtocolConfig", "make_protocol"]
