"""The AFT, constrained-DPO, OREAL, QCRD-style and process-verifier losses against values worked out by hand."""

import math

import pytest
import torch

from trainers.losses import (
    aft_loss,
    aft_ranking_loss,
    dpo_boundary_term,
    oreal_loss,
    qcrd_loss,
    step_bce_loss,
    threshold_rescale,
)


def t(*values):
    return torch.tensor([list(values)], dtype=torch.float64, requires_grad=True)


def test_plain_alignment_term_matches_the_formula():
    pos, neg = t(-1.0, -2.0), t(-3.0, -1.5)
    expected = math.log(1 + sum(math.exp(n - p) for p in (-1.0, -2.0) for n in (-3.0, -1.5)))
    assert aft_loss(pos, neg, constraint="none").item() == pytest.approx(expected)


def test_boundary_loss_matches_the_formula():
    pos, neg, beta = t(-1.0, -2.0), t(-3.0), 0.5
    b = -2.0 - beta
    expected = math.log(1 + sum(math.exp(-3.0 - p) + math.exp((2 * b - p) - -3.0) for p in (-1.0, -2.0)))
    assert aft_loss(pos, neg, constraint="boundary", beta=beta).item() == pytest.approx(expected)


@pytest.mark.parametrize("offset, sign", [(0.0, 0), (-0.7, -1), (0.7, 1)])
def test_boundary_gradient_on_a_negative_is_zero_at_b_and_pushes_it_up_below_b(offset, sign):
    pos, beta = t(-1.0, -2.0), 0.5
    b = -2.0 - beta
    neg = t(b + offset)
    aft_loss(pos, neg, constraint="boundary", beta=beta).backward()
    grad = neg.grad.item()
    if sign == 0:
        assert grad == pytest.approx(0.0, abs=1e-12)
    else:  # gradient descent moves s_n against the gradient: up when below B, down when above
        assert math.copysign(1, grad) == sign


def test_detached_variant_sends_no_gradient_to_negatives():
    pos, neg = t(-1.0, -2.0), t(-3.0, -0.5)
    loss = aft_loss(pos, neg, constraint="detached")
    loss.backward()
    assert neg.grad is None or torch.all(neg.grad == 0)
    assert pos.grad is not None and torch.all(pos.grad < 0)  # positives are pushed up
    assert loss.item() == pytest.approx(aft_loss(pos.detach(), neg.detach(), constraint="none").item())


def test_ranking_with_two_answers_equals_the_binary_loss():
    for constraint in ("boundary", "detached", "none"):
        scores = t(-1.2, -2.5)
        binary = aft_loss(scores[:, :1], scores[:, 1:], constraint=constraint, beta=0.3)
        ranked = aft_ranking_loss(scores, torch.tensor([[0, 1]]), constraint=constraint, beta=0.3)
        assert ranked.item() == pytest.approx(binary.item())


def test_ranking_takes_every_ordered_pair_with_b_over_the_answers_above():
    s = [-1.0, -2.0, -3.0]
    beta = 0.2
    got = aft_ranking_loss(t(*s), torch.tensor([[0, 1, 2]]), constraint="boundary", beta=beta).item()
    total = 0.0
    for j in range(3):
        above = [s[i] for i in range(j)]
        if not above:
            continue
        b = min(above) - beta
        for si in above:
            total += math.exp(s[j] - si) + math.exp((2 * b - si) - s[j])
    assert got == pytest.approx(math.log(1 + total))


def test_padding_does_not_change_a_groups_loss():
    alone = aft_loss(t(-1.0), t(-2.0, -3.0))
    pos = torch.tensor([[-1.0, 0.0], [-0.5, -0.7]], dtype=torch.float64)
    neg = torch.tensor([[-2.0, -3.0], [-1.0, 9.0]], dtype=torch.float64)
    batch = aft_loss(pos, neg, torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 1], [1, 0]]))
    second = aft_loss(pos[1:], neg[1:, :1])
    assert batch.item() == pytest.approx((alone.item() + second.item()) / 2)


def test_dpo_boundary_term_value_and_gradients():
    chosen = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([-1.5], dtype=torch.float64, requires_grad=True)
    term = dpo_boundary_term(chosen, rejected, beta_c=0.1)
    assert term.item() == pytest.approx(math.log(1 + math.exp((-1.0 - 0.2) - -1.5)))
    term.sum().backward()
    assert chosen.grad is None or chosen.grad.item() == 0  # T is held constant
    assert rejected.grad.item() < 0  # descent raises a rejected score that falls too low


def test_the_verifier_loss_is_the_cross_entropy_of_the_labelled_steps_only():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 9.0, -9.0]], requires_grad=True)
    labels = torch.tensor([[1, 0, 1], [0, -100, -100]])
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    terms = [
        -math.log(sigmoid(2.0)),
        -math.log(1 - sigmoid(-1.0)),
        -math.log(sigmoid(0.5)),
        -math.log(1 - sigmoid(0.3)),
    ]
    loss = step_bce_loss(logits, labels)
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-6)
    loss.backward()
    assert logits.grad[1, 1] == 0 and logits.grad[1, 2] == 0  # padding learns nothing
    # d/dz of -log(sigmoid(z)) is sigmoid(z) - 1, over the 4 labelled steps
    assert logits.grad[0, 0].item() == pytest.approx((sigmoid(2.0) - 1) / 4, rel=1e-5)


def test_oreal_clones_right_solutions_and_pushes_wrong_ones_down_by_their_advantage():
    # two solutions of 2 and 1 tokens (the second padded): the first right, the second wrong with
    # advantage -0.5 (half of the other solutions were right)
    logps = torch.tensor([[-0.5, -1.0], [-2.0, -9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    reward, advantage = torch.tensor([1.0, 0.0]), torch.tensor([0.5, -0.5])
    weights = torch.tensor([[0.2, 1.0], [0.6, 1.0]])
    total, positive, negative = oreal_loss(logps, mask, reward, advantage, weights, weights, 2.0, 0.5)
    # positive: 2 * (0.2 * 0.5 + 1.0 * 1.0) / 2 tokens; negative: 0.5 * -(-0.5 * 0.6) / 1 token
    assert positive.item() == pytest.approx(2.0 * (0.1 + 1.0) / 2)
    assert negative.item() == pytest.approx(0.5 * 0.3)
    assert total.item() == pytest.approx(positive.item() + negative.item())
    total.backward()
    # gradient descent raises the right tokens' log-probabilities and lowers the wrong one's
    assert logps.grad.flatten().tolist() == pytest.approx([-2.0 * 0.2 / 2, -2.0 * 1.0 / 2, 0.5 * 0.5 * 0.6, 0.0])

    # with weights and factors of 1 the terms are plain: SFT on the right solutions, and the
    # policy gradient -A * grad(log p) on the wrong ones
    plain = torch.tensor([[-0.5, -1.0], [-2.0, -9.0]], requires_grad=True)
    total, positive, negative = oreal_loss(plain, mask, reward, advantage)
    assert positive.item() == pytest.approx((0.5 + 1.0) / 2) and negative.item() == pytest.approx(0.5)
    total.backward()
    assert plain.grad.flatten().tolist() == pytest.approx([-0.5, -0.5, 0.5, 0.0])


def test_token_weights_start_above_the_threshold():
    weights = threshold_rescale(torch.tensor([0.2, 0.5, 0.75, 1.0]), 0.5)
    assert weights.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0])


def test_the_qcrd_style_contrast_sets_each_right_rationale_against_every_wrong_one():
    # one question: right rationales scored -1 and -2 (weights 0.5, 1), wrong ones -3 and -1.5
    # (weights 0.2, 0.8); a second question's padding takes no part
    pos = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]], dtype=torch.float64)
    neg = torch.tensor([[-3.0, -1.5], [-4.0, 0.0]], dtype=torch.float64)
    pos_mask, neg_mask = torch.tensor([[1, 1], [1, 0]]), torch.tensor([[1, 1], [1, 0]])
    pos_w = torch.tensor([[0.5, 1.0], [1.0, 1.0]], dtype=torch.float64)
    neg_w = torch.tensor([[0.2, 0.8], [1.0, 1.0]], dtype=torch.float64)

    def term(p, negatives):
        return math.log(1 + sum(w * math.exp(n - p) for n, w in negatives))

    expected = 0.5 * term(-1.0, [(-3.0, 0.2), (-1.5, 0.8)]) + 1.0 * term(-2.0, [(-3.0, 0.2), (-1.5, 0.8)])
    expected = (expected + term(-0.5, [(-4.0, 1.0)])) / 3
    assert qcrd_loss(pos, neg, pos_mask, neg_mask, pos_w, neg_w).item() == pytest.approx(expected)
    # weights of 1: the plain many-to-one term log(1 + sum_n exp(s_n - s_p))
    plain = (term(-1.0, [(-3.0, 1), (-1.5, 1)]) + term(-2.0, [(-3.0, 1), (-1.5, 1)]) + term(-0.5, [(-4.0, 1)])) / 3
    assert qcrd_loss(pos, neg, pos_mask, neg_mask).item() == pytest.approx(plain)
