"""The validated config of `agora simulate`: Hydra composes it, pydantic checks it.

Everything is checked before a model loads or a file is written, and every error names the
key at fault.
"""

from __future__ import annotations

from importlib import resources

import yaml
from omegaconf import DictConfig, OmegaConf
from pydantic import Field, ValidationError, model_validator

from agents.config import AgentConfig, BackendConfig, ScaleConfig, Strict
from agents.errors import AgoraError
from dialogue.core.questions import DatasetConfig
from dialogue.protocols import ProtocolConfig


class PromptsConfig(Strict):
    answer_format: dict[str, str]  # by answer kind: choice, number, alias
    judge: str  # the LLM extractor's prompt, with {question} and {reply}


class StimulusConfig(Strict):
    """A phrase of conf/stimulus/NAME.yaml appended to agents' system messages (NegativePrompt;
    positive-thinking messages): `stimulus=NAME` chooses the set, `stimulus.phrase=ID` the phrase."""

    name: str = "none"
    category: str = ""
    phrase: str | None = None  # the id of the phrase appended; null only for a set without phrases
    agents: list[str] | None = None  # whose system message gets it; null: every agent
    phrases: dict[str, str] = {}

    @model_validator(mode="after")
    def _known_phrase(self) -> StimulusConfig:
        if self.phrases and self.phrase not in self.phrases:
            raise ValueError(f"phrase '{self.phrase}' is not in the set {self.name} ({', '.join(self.phrases)})")
        if not self.phrases and self.phrase is not None:
            raise ValueError(f"phrase '{self.phrase}': the set {self.name} has no phrases")
        return self

    @property
    def label(self) -> str:
        return f"{self.name}/{self.phrase}" if self.phrase else self.name

    def system_message(self, persona: str, agent: str) -> str:
        """`agent`'s persona with the phrase appended, if the phrase is for that agent."""
        if self.phrase is None or (self.agents is not None and agent not in self.agents):
            return persona
        return f"{persona.strip()}\n\n{self.phrases[self.phrase]}".strip()


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
    stimulus: StimulusConfig = StimulusConfig()
    engine: EngineConfig = EngineConfig()
    scale: ScaleConfig = ScaleConfig()  # where the backends run: here, or in Ray workers
    progress: bool = True

    @model_validator(mode="after")
    def _stimulus_agents(self) -> SimulateConfig:
        unknown = [a for a in self.stimulus.agents or [] if a not in self.agents]
        if unknown:
            raise ValueError(f"stimulus.agents: '{unknown[0]}' is not among agents ({', '.join(self.agents)})")
        return self

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


def system_messages(config: SimulateConfig) -> dict[str, str]:
    """Each agent's system message: its persona, and the stimulus where it applies."""
    return {name: config.stimulus.system_message(load_persona(a.persona), name) for name, a in config.agents.items()}


def load_persona(name: str) -> str:
    """The text of conf/persona/NAME.yaml."""
    folder = resources.files("conf") / "persona"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise AgoraError(f"unknown persona '{name}' (conf/persona/ has: {', '.join(known)})")
    try:
        data = OmegaConf.load(str(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise AgoraError(f"conf/persona/{name}.yaml{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, DictConfig) or "text" not in data:
        raise AgoraError(f"conf/persona/{name}.yaml: missing key 'text'")
    return str(data.text)


def config_of(config: SimulateConfig) -> dict:
    """What makes a run what it is: the config without where it is written, how it reports, how
    the engine schedules, or where the backends run. No stimulus is left out too, so that runs
    made before stimuli existed keep their config."""
    excluded = {"out", "progress", "engine", "scale"} | ({"stimulus"} if config.stimulus.phrase is None else set())
    return config.model_dump(mode="json", exclude=excluded)
