"""The validated config of `agora eval` (conf/eval.yaml)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from agents.config import BAD_TOKEN, GOOD_TOKEN, STEP_SEPARATOR, BackendConfig, ScaleConfig, Strict, one_of
from dialogue.core.questions import DatasetConfig
from dialogue.evaluation.fewshot import FewShotConfig
from dialogue.protocols import ProtocolConfig
from dialogue.running.config import PromptsConfig, StimulusConfig, one_as_list

EVALUATED, PARTNER = "A", "B"  # the agent names every evaluation protocol uses


class PersonaChoice(Strict):
    """A file of conf/persona/, chosen as a config group (so `-m persona=a,b` sweeps it)."""

    name: str = "custom"
    text: str


class CritiqueData(Strict):
    """The worked arithmetic solutions the critique suite's critic judges."""

    count: int = Field(20, ge=1)
    steps: int = Field(3, ge=1)
    seed: int = 0
    wrong_fraction: float = Field(0.5, ge=0.0, le=1.0)


class VerifierOptions(Strict):
    """How the verifier suite reads a process verifier: as `agora train trainer=prm` trained it."""

    step_separator: str = STEP_SEPARATOR
    good_token: str = GOOD_TOKEN
    bad_token: str = BAD_TOKEN
    max_length: int = Field(1024, ge=16)


class EvalConfig(Strict):
    suite: list[str]  # names in dialogue/evaluation/suites/ (SUITES), or all: suite=NAME or suite=[A,B]
    model: str
    partner: str | None = None  # the other agent (persuader, teammate); null: the model itself
    persona: PersonaChoice  # the evaluated model's system message
    partner_persona: str = "neutral"
    stimulus: StimulusConfig = StimulusConfig()  # appended to the evaluated model's system message
    data: list[str] = []  # exports of `agora mine`: a pbt one (balanced), an aft one (assessment)
    out: str
    seed: int = 0
    resamples: int = Field(1000, ge=0)  # bootstrap resamples for each interval
    max_tokens: int = Field(256, ge=1)
    backend: BackendConfig
    scale: ScaleConfig = ScaleConfig()  # the protocol suites' backends: here, or in Ray workers
    dataset: DatasetConfig  # the questions of are_you_sure, misinformation and team_debate; its split
    # (default test) selects the questions of every suite, export rows and critique problems too
    prompts: PromptsConfig
    # the protocols of the suites that run one, by suite name (conf/eval.yaml); their agents are A and B
    protocols: dict[str, ProtocolConfig]
    critique: CritiqueData = CritiqueData()
    verifier: VerifierOptions = VerifierOptions()
    fewshot: FewShotConfig = FewShotConfig()  # worked examples before each question (protocol suites)
    overwrite: bool = False
    allow_overlap: bool = False  # evaluate a trained model on questions it was trained on (the report says so)
    progress: bool = True

    @model_validator(mode="before")
    @classmethod
    def _one_export(cls, data):
        return one_as_list(one_as_list(data, "data"), "suite")

    @model_validator(mode="after")
    def _agents(self) -> EvalConfig:
        for suite, protocol in self.protocols.items():
            for role, name in protocol.roles.items():
                if name not in (EVALUATED, PARTNER):
                    raise ValueError(
                        f"protocols.{suite}.{role} is '{name}'; evaluation agents are "
                        f"{EVALUATED} (the model) and {PARTNER} (the partner)"
                    )
            # a protocol every agent of which speaks in turn (a debate) has exactly the two
            if sorted(getattr(protocol, "agents", [EVALUATED, PARTNER])) != [EVALUATED, PARTNER]:
                raise ValueError(f"protocols.{suite}.agents: must be [{EVALUATED}, {PARTNER}]")
        return self

    @model_validator(mode="after")
    def _examples_from_another_split(self) -> EvalConfig:
        if self.fewshot.count and (self.fewshot.split in (self.dataset.split, "all") or self.dataset.split == "all"):
            raise ValueError(
                f"fewshot.split={self.fewshot.split} with dataset.split={self.dataset.split}: the examples "
                "must come from another split than the questions evaluated"
            )
        return self

    @field_validator("suite")
    @classmethod
    def _known_suites(cls, suites: list[str]) -> list[str]:
        from dialogue.evaluation.suites import SUITES  # the suites module reads this config

        if not suites:
            raise ValueError("names no suite; give suite=NAME, suite=[A,B] or suite=all")
        return list(dict.fromkeys(one_of(suite, {"all": None, **SUITES}, "suite") for suite in suites))

    @property
    def every_suite(self) -> bool:
        """suite=all: a suite that needs an export not given is left out, not an error."""
        return "all" in self.suite

    @property
    def system_message(self) -> str:
        """The evaluated model's: its persona and the stimulus."""
        return self.stimulus.system_message(self.persona.text, EVALUATED)

    @property
    def suites(self) -> list[str]:
        from dialogue.evaluation.suites import SUITES

        return list(SUITES) if self.every_suite else self.suite
