"""Bootstrap confidence intervals over questions.

Records are grouped by question and whole questions are resampled, because the rows of one
question (two speaking orders, several persuasion turns) are not independent of each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np

R = TypeVar("R")


@dataclass(frozen=True)
class Estimate:
    value: float | None  # None: undefined on this data (say, no question answered correctly at first)
    low: float | None
    high: float | None
    n: int  # records the statistic was defined over (questions, pairs, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.value is None:
            return f"n/a (n={self.n})"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def estimate(by_question: Sequence[Sequence[R]], statistic: Callable[[list[R]], tuple[float, int] | None],
             resamples: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """`statistic(records) -> (value, n)` or None when undefined; a percentile interval from
    `resamples` resamples of whole questions (resamples where it is undefined are left out)."""
    flat = [r for group in by_question for r in group]
    found = statistic(flat)
    if found is None:
        return Estimate(None, None, None, 0)
    value, n = found
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples if len(by_question) > 1 else 0):
        picks = rng.integers(0, len(by_question), len(by_question))
        again = statistic([r for i in picks for r in by_question[i]])
        if again is not None:
            values.append(again[0])
    if not values:
        return Estimate(value, value, value, n)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high), n)
