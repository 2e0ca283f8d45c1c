"""The validated config of `agora simulate`: Hydra composes it, pydantic checks it.

Everything is checked before a model loads or a file is written, and every error names the
key at fault.
"""

from __future__ import annotations

from importlib import resources

from omegaconf import DictConfig, OmegaConf
from pydantic import Field, ValidationError, model_validator

from agents.config import AgentConfig, BackendConfig, ScaleConfig, Strict
from agents.errors import AgoraError
from dialogue.core.questions import DatasetConfig
from dialogue.protocols import ProtocolConfig


class PromptsConfig(Strict):
    answer_format: dict[str, str]  # by answer kind: choice, number, alias
    judge: str  # the LLM extractor's prompt, with {question} and {reply}


class EngineConfig(Strict):
    """How the engine schedules, not what it grows: a run's trees do not depend on it."""

    max_active_trees: int = Field(256, ge=1)  # trees growing at once; memory is bounded by it


class SimulateConfig(Strict):
    out: str
    seed: int = 0
    agents: dict[str, AgentConfig] = Field(min_length=1)
    backend: BackendConfig
    protocol: ProtocolConfig
    dataset: DatasetConfig
    prompts: PromptsConfig
    judge_model: str | None = None  # the LLM extractor's model; null: the first role's
    engine: EngineConfig = EngineConfig()
    scale: ScaleConfig = ScaleConfig()  # where the backends run: here, or in Ray workers
    progress: bool = True

    @model_validator(mode="after")
    def _roles_are_agents(self) -> SimulateConfig:
        for role, name in self.protocol.roles.items():
            if name not in self.agents:
                raise ValueError(f"protocol.{role} is '{name}', which is not among agents ({', '.join(self.agents)})")
        return self


def validate(cfg: DictConfig | dict, model: type[Strict] = SimulateConfig) -> Strict:
    """Validate a composed config; a failure names every key at fault."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    data = {k: v for k, v in data.items() if k != "hydra"}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
            problems.append(f"  {key or '(config)'}: {err['msg']}")
        raise AgoraError("invalid config:\n" + "\n".join(problems)) from None


def one_as_list(data, key: str):
    """A config's `key=VALUE` given once, as the list the key holds (`run=A` -> `run=[A]`); for a
    pydantic `mode="before"` validator."""
    if isinstance(data, dict) and isinstance(data.get(key), str):
        data = {**data, key: [data[key]]}
    return data


def load_persona(name: str) -> str:
    """The text of conf/persona/NAME.yaml."""
    folder = resources.files("conf") / "persona"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise AgoraError(f"unknown persona '{name}' (conf/persona/ has: {', '.join(known)})")
    data = OmegaConf.load(str(path))
    if "text" not in data:
        raise AgoraError(f"conf/persona/{name}.yaml: missing key 'text'")
    return str(data.text)
