"""A stage is one TRL training run inside a trainer: `pbt` is an SFT stage then a DPO stage,
`aft` is one stage. Each trainer module lists its stages; trainers/run.py runs them in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from datasets import Dataset


@dataclass(frozen=True)
class Stage:
    config_class: type  # the TRL (or transformers) config dataclass
    trainer_class: type
    columns: tuple[str, ...]  # what the stage reads from the export; checked before training
    miner: str  # the `agora mine miner=...` that writes these columns, for error messages
    subset: str = ""  # the export's subfolder (miner=critique writes four)
    prepare: Callable[[Dataset], Dataset] | None = None  # rows -> what the trainer reads
    collator: Callable | None = None  # (tokenizer, args) -> data collator, for trainers that need one


def chosen_as_completion(data: Dataset) -> Dataset:
    """Preference rows -> prompt/completion rows for SFT on the chosen reply."""
    return data.rename_column("chosen", "completion").remove_columns(
        [c for c in ("rejected",) if c in data.column_names]
    )


class LogsLossParts:
    """A Trainer mixin: what `compute_loss` put in `self._metrics` (the loss's parts) joins each
    logged training step."""

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs and getattr(self, "_metrics", None):
            logs = {**logs, **self._metrics}
        super().log(logs, *args, **kwargs)
