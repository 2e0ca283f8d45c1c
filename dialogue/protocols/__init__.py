"""Protocols decide, for a turn, which children to create and when a branch stops. Each is one
module: its config (a pydantic model whose `name` is the protocol's) and its class."""

from typing import Annotated, Union

from pydantic import Field

from dialogue.protocols.are_you_sure import AreYouSure, AreYouSureConfig
from dialogue.protocols.base import ChildSpec, Protocol
from dialogue.protocols.critique import Critique, CritiqueConfig
from dialogue.protocols.debate import Debate, DebateConfig
from dialogue.protocols.misinformation import Misinformation, MisinformationConfig
from dialogue.protocols.pbt_tree import PbtTree, PbtTreeConfig
from dialogue.protocols.reverse import Reverse, ReverseConfig
from dialogue.protocols.rollouts import Rollouts, RolloutsConfig

# The one list of protocols: name -> (config, class); everything else is derived from it.
REGISTRY: dict[str, tuple[type, type[Protocol]]] = {
    cls.name: (config, cls)
    for config, cls in (
        (PbtTreeConfig, PbtTree),
        (CritiqueConfig, Critique),
        (AreYouSureConfig, AreYouSure),
        (MisinformationConfig, Misinformation),
        (DebateConfig, Debate),
        (RolloutsConfig, Rollouts),
        (ReverseConfig, Reverse),
    )
}
PROTOCOL_CONFIGS = {name: config for name, (config, _) in REGISTRY.items()}
ProtocolConfig = Annotated[Union[tuple(PROTOCOL_CONFIGS.values())], Field(discriminator="name")]  # noqa: UP007


def make_protocol(config) -> Protocol:
    return REGISTRY[config.name][1](config)


__all__ = [
    "PROTOCOL_CONFIGS",
    "REGISTRY",
    "AreYouSure",
    "AreYouSureConfig",
    "ChildSpec",
    "Critique",
    "CritiqueConfig",
    "Debate",
    "DebateConfig",
    "Misinformation",
    "MisinformationConfig",
    "ProtocolConfig",
    "PbtTree",
    "PbtTreeConfig",
    "Protocol",
    "Reverse",
    "ReverseConfig",
    "Rollouts",
    "RolloutsConfig",
    "make_protocol",
]
