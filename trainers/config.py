"""The config of `agora train`, validated at the boundary. TRL options stay a plain dict here:
each stage checks them against its own TRL config class when it is built (trainers/run.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from agents.config import Strict, one_of


class LoraSettings(Strict):
    enabled: Literal["auto", True, False] = "auto"  # auto: LoRA for models over 1B parameters
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class TrainerSettings(Strict):
    name: str  # a key of trainers/run.py TRAINERS
    stages: list[str] = Field(min_length=1)  # run in this order; each starts from the previous one's weights
    lora: LoraSettings = LoraSettings()
    save: Literal["adapter", "merged"] = "adapter"  # with LoRA: the adapter alone, or merged full weights
    args: dict[str, Any] = {}  # options of every stage's TRL config (learning_rate, max_steps, ...)
    stage: dict[str, dict[str, Any]] = {}  # options of one stage only: stage.dpo.beta=0.2

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from trainers.run import TRAINERS  # which imports this module

        return one_of(name, TRAINERS, "trainer")


class DataSettings(Strict):
    path: str  # an `agora mine` output directory
    labels: list[str] | None = None  # keep only rows with these labels (accept, resist)


class TrainConfig(Strict):
    trainer: TrainerSettings
    data: DataSettings
    model: str
    out: str
    seed: int = 0
    resume: bool = False  # continue an unfinished run in `out` from its last checkpoint
    overwrite: bool = False  # replace a finished run in `out`


def train_override(override: str) -> str:
    """An `agora train` command-line override as Hydra takes it: `data=DIR` names the export
    (data.labels is the other data key); `trainer.*` may add any TRL option, which the trainer's
    YAML does not list."""
    if override.startswith("data="):
        return "data.path=" + override[len("data=") :]
    if override.startswith("trainer."):
        return "++" + override
    return override
