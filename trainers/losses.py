"""The losses of AFT (Wang et al. 2023), of constrained DPO, of weighted SFT, of OREAL, of
Agora's QCRD-style contrast and of a process verifier, as plain tensor functions.

A score s(c) is the mean token log-probability of answer c given the prompt under the model
being trained. Groups of different sizes come padded, with a boolean mask marking real entries.

Alignment term over one group: L_A = log(1 + sum_p sum_n exp(s_n - s_p)).
The boundary constraint adds, for each (p, n), exp(T - s_n) with B = min_p s_p - beta and
T = 2B - s_p held constant: the gradient on s_n is then zero at s_n = B and pushes s_n up
below it, so negatives are ranked under the positives without being driven to -infinity.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Constraint = Literal["boundary", "detached", "none"]


def aft_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    pos_mask: torch.Tensor | None = None,
    neg_mask: torch.Tensor | None = None,
    constraint: Constraint = "boundary",
    beta: float = 0.1,
) -> torch.Tensor:
    """Mean over groups of the constraint alignment loss. pos: [G, P] scores, neg: [G, N].

    `detached`: L_A with the negatives' scores detached (no gradient reaches them).
    `none`: plain L_A.
    """
    pos_mask = torch.ones_like(pos, dtype=torch.bool) if pos_mask is None else pos_mask.bool()
    neg_mask = torch.ones_like(neg, dtype=torch.bool) if neg_mask is None else neg_mask.bool()
    negatives = neg.detach() if constraint == "detached" else neg
    pairs = pos_mask[:, :, None] & neg_mask[:, None, :]  # [G, P, N]
    logits = [negatives[:, None, :] - pos[:, :, None]]
    if constraint == "boundary":
        boundary = pos.masked_fill(~pos_mask, float("inf")).min(dim=1).values - beta  # [G]
        target = (2 * boundary[:, None] - pos).detach()  # T per positive: [G, P]
        logits.append(target[:, :, None] - neg[:, None, :])
    return _log1p_sum_exp(logits, pairs).mean()


def aft_ranking_loss(
    scores: torch.Tensor,
    ranks: torch.Tensor,
    mask: torch.Tensor | None = None,
    constraint: Constraint = "boundary",
    beta: float = 0.1,
) -> torch.Tensor:
    """The ranking variant: every ordered pair (i ranked above j, lower rank is better) plays
    the part of (positive, negative), with B_j = min of the scores ranked above j, minus beta.
    scores, ranks: [G, K]. With two answers of different rank it equals `aft_loss`."""
    mask = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask.bool()
    above = (ranks[:, :, None] < ranks[:, None, :]) & mask[:, :, None] & mask[:, None, :]  # [G, i, j]
    lower = scores.detach() if constraint == "detached" else scores
    logits = [lower[:, None, :] - scores[:, :, None]]
    if constraint == "boundary":
        candidates = scores[:, :, None].expand_as(above).masked_fill(~above, float("inf"))
        boundary = candidates.min(dim=1).values - beta  # B_j: [G, K]; inf where nothing is above j
        target = (2 * boundary[:, None, :] - scores[:, :, None]).detach()  # T_ij
        logits.append(torch.where(above, target - scores[:, None, :], torch.zeros_like(target)))
    return _log1p_sum_exp(logits, above).mean()


def dpo_boundary_term(chosen: torch.Tensor, rejected: torch.Tensor, beta_c: float = 0.1) -> torch.Tensor:
    """The term constrained DPO adds per pair: log(1 + exp(T - s_rejected)), with
    T = s_chosen - 2 * beta_c held constant. It keeps the rejected answer's score from falling
    far below the chosen one's. chosen, rejected: [batch] scores; returns [batch]."""
    target = chosen.detach() - 2 * beta_c
    return F.softplus(target - rejected)


def weighted_sft_loss(scores: torch.Tensor, counts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Token-level negative log-likelihood with each row's tokens weighted by its weight, over
    all tokens of the batch: with every weight 1 it is the SFT loss. scores: [R] mean token
    log-probabilities, counts: [R] their numbers of tokens, weights: [R]."""
    return -(weights * scores * counts).sum() / counts.sum().clamp(min=1)


def oreal_loss(
    logps: torch.Tensor,
    mask: torch.Tensor,
    reward: torch.Tensor,
    advantage: torch.Tensor,
    positive_weights: torch.Tensor | None = None,
    negative_weights: torch.Tensor | None = None,
    positive_factor: float = 1.0,
    negative_factor: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OREAL's objective over sampled solutions with a binary outcome (Lyu et al. 2025): behaviour
    cloning on the right ones, and on the wrong ones a policy-gradient term with the advantage
    reshaped to the others' success (r - mean of the group's other rewards, so always <= 0: a wrong
    answer to a question the model usually solves is pushed down hardest, one nobody solves not at
    all). Each part is a mean over its own tokens; token weights (from a token-level reward model)
    scale each token's term. logps, mask, weights: [R, T] (log-probability of each completion
    token); reward, advantage: [R]. Returns (total, positive part, negative part).

    The negative term is written with the ratio exp(logp - logp.detach()), which is 1: its value is
    -sum(A * w) / tokens and its gradient -A * w * grad(logp), the on-policy policy gradient."""
    mask = mask.to(logps.dtype)
    positive_weights = torch.ones_like(logps) if positive_weights is None else positive_weights
    negative_weights = torch.ones_like(logps) if negative_weights is None else negative_weights
    right = (reward > 0).to(logps.dtype)[:, None] * mask
    wrong = (reward <= 0).to(logps.dtype)[:, None] * mask
    positive = -(logps * positive_weights * right).sum() / right.sum().clamp(min=1)
    ratio = torch.exp(logps - logps.detach())
    negative = -(ratio * advantage[:, None] * negative_weights * wrong).sum() / wrong.sum().clamp(min=1)
    positive, negative = positive_factor * positive, negative_factor * negative
    return positive + negative, positive, negative


def qcrd_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    pos_mask: torch.Tensor,
    neg_mask: torch.Tensor,
    pos_weights: torch.Tensor | None = None,
    neg_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Agora's QCRD-style many-to-one contrast (trainers/qcrd.py): the mean over every right
    rationale p of w_p * log(1 + sum_n w_n * exp(s_n - s_p)) over its question's wrong ones n.
    pos: [G, P] scores, neg: [G, N]; masks mark real entries; weights default to 1."""
    pos_weights = torch.ones_like(pos) if pos_weights is None else pos_weights
    neg_weights = torch.ones_like(neg) if neg_weights is None else neg_weights
    logits = neg[:, None, :] - pos[:, :, None] + torch.log(neg_weights.clamp(min=1e-12))[:, None, :]  # [G, P, N]
    logits = logits.masked_fill(~neg_mask.bool()[:, None, :], float("-inf"))
    zero = torch.zeros_like(logits[..., :1])
    per_positive = torch.logsumexp(torch.cat([zero, logits], dim=-1), dim=-1)  # log(1 + sum_n ...): [G, P]
    mask = pos_mask.bool()
    return (pos_weights * per_positive)[mask].sum() / mask.sum().clamp(min=1)


def threshold_rescale(probability: torch.Tensor, threshold: float) -> torch.Tensor:
    """OREAL's token weight from a token-level reward: 0 up to `threshold`, rising linearly to 1."""
    return ((probability - threshold) / (1 - threshold)).clamp(0, 1)


def step_bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A process verifier's loss: binary cross-entropy of each labelled step's logit against its
    label (1 right, 0 wrong), the mean over every labelled step of the batch; -100 marks padding.
    logits, labels: [B, S]."""
    mask = labels != -100
    return F.binary_cross_entropy_with_logits(logits[mask], labels[mask].to(logits.dtype))


def _log1p_sum_exp(logits: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Per group, log(1 + sum of exp over the masked entries of every tensor), computed stably."""
    flat = [x.masked_fill(~mask, float("-inf")).flatten(1) for x in logits]
    zero = torch.zeros((mask.shape[0], 1), dtype=logits[0].dtype, device=logits[0].device)
    return torch.logsumexp(torch.cat([zero, *flat], dim=1), dim=1)
