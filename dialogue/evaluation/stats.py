"""Intervals over questions: Wilson score intervals for proportions, a percentile bootstrap that
resamples whole questions for derived numbers, and a paired bootstrap for differences.

Records are grouped by question, because the rows of one question (two speaking orders, several
persuasion turns) are not independent of each other.

- A proportion (`Proportion`: k of n records) whose questions each contribute at most one record
  gets a Wilson score interval: it is not degenerate at 0/n or n/n, where a bootstrap collapses
  to a point and claims certainty it does not have.
- A proportion over several records per question gets the percentile bootstrap over questions;
  where every record agrees (0/n, n/n) and the bootstrap collapses, it gets the Wilson interval
  with the number of questions as its n, which counts a question's records as one observation.
- Any other statistic (a mean of rates, a difference, an F1) gets the percentile bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TypeVar

import numpy as np

R = TypeVar("R")


@dataclass(frozen=True)
class Estimate:
    value: float | None  # None: undefined on this data (say, no question answered correctly at first)
    low: float | None
    high: float | None
    n: int  # records the statistic was defined over (questions, pairs, ...)
    method: str = "bootstrap"  # "wilson", "bootstrap", "wilson over questions", "paired bootstrap"
    p_value: float | None = None  # a paired difference's two-sided bootstrap p-value for "no difference"

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.value is None:
            return f"n/a (n={self.n})"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def always(_record) -> bool:
    return True


@dataclass(frozen=True)
class Proportion:
    """The fraction of records that satisfy `counts` among those of type `of` that satisfy
    `among`; None (undefined) when there are none."""

    counts: Callable
    among: Callable = always
    of: type | None = None  # the record type it reads; others are ignored

    def pool(self, records: Sequence) -> list:
        return [r for r in records if (self.of is None or isinstance(r, self.of)) and self.among(r)]

    def __call__(self, records: Sequence) -> tuple[float, int] | None:
        pool = self.pool(records)
        if not pool:
            return None
        return sum(1 for r in pool if self.counts(r)) / len(pool), len(pool)


Statistic = Callable[[list], "tuple[float, int] | None"]


def wilson(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion."""
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # the interval holds p; in floating point 0 successes of 34 gave a low end of 7e-18 above it
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def estimate(
    by_question: Sequence[Sequence[R]], statistic: Statistic, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """The statistic's value, n and interval (see the module docstring for which interval)."""
    flat = [r for group in by_question for r in group]
    found = statistic(flat)
    if found is None:
        return Estimate(None, None, None, 0)
    value, n = found
    if isinstance(statistic, Proportion):
        pools = [statistic.pool(group) for group in by_question]
        if all(len(p) <= 1 for p in pools):
            return Estimate(float(value), *wilson(value * n, n, level), n, "wilson")
    values = _resampled(
        len(by_question), resamples, seed, lambda picks: statistic([r for i in picks for r in by_question[i]])
    )
    if isinstance(statistic, Proportion) and (not values or min(values) == max(values)):
        questions = sum(1 for p in pools if p)
        return Estimate(float(value), *wilson(value * questions, questions, level), n, "wilson over questions")
    if not values:
        return Estimate(float(value), float(value), float(value), n)
    low, high = _percentiles(values, level)
    return Estimate(float(value), low, high, n)


def paired_difference(
    a: Mapping[str, Sequence],
    b: Mapping[str, Sequence],
    statistic: Statistic,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """statistic(b) - statistic(a) over the same questions (the keys of both), with a percentile
    interval from resampling questions once for both sides: what differs between two models on
    the same questions, not what differs between two samples of questions."""
    if set(a) != set(b):
        raise ValueError("a paired difference needs the same questions on both sides")
    keys = sorted(a)
    groups_a, groups_b = [a[k] for k in keys], [b[k] for k in keys]

    def difference(picks) -> float | None:
        found_a = statistic([r for i in picks for r in groups_a[i]])
        found_b = statistic([r for i in picks for r in groups_b[i]])
        if found_a is None or found_b is None:
            return None
        return found_b[0] - found_a[0]

    value = difference(range(len(keys)))
    if value is None:
        return Estimate(None, None, None, 0, "paired bootstrap")
    values = _resampled(len(keys), resamples, seed, difference)
    low, high = _percentiles(values, level) if values else (value, value)
    return Estimate(float(value), low, high, len(keys), "paired bootstrap", bootstrap_p(values))


def bootstrap_p(values: list[float]) -> float | None:
    """Two-sided p-value of "no difference" from the resampled differences: twice the smaller
    share of them on either side of 0 (each share counted as (k + 1) / (B + 1), so never 0). It
    agrees with the percentile interval: the 95% interval excludes 0 about when p < 0.05."""
    if not values:
        return None
    at_most = sum(v <= 0 for v in values)
    at_least = sum(v >= 0 for v in values)
    return min(1.0, 2 * (min(at_most, at_least) + 1) / (len(values) + 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: each p-value made valid for the whole family of tests (the
    chance of any false finding stays at the level), under any dependence between them."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _resampled(groups: int, resamples: int, seed: int, statistic: Callable) -> list[float]:
    """The statistic over `resamples` resamples of the groups, left out where it is undefined."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples if groups > 1 else 0):
        found = statistic(rng.integers(0, groups, groups))
        if found is not None:
            values.append(found[0] if isinstance(found, tuple) else found)
    return values


def _percentiles(values: list[float], level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
