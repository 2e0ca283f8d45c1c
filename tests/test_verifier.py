"""A process verifier end to end: the step positions it reads, and a PRM trained on a stepwise
export that reranks held-out solutions better than a majority vote does."""

import pytest
import torch

from agents.errors import AgoraError
from agents.models import load_causal_lm
from agents.scoring import prompt_ids, step_scores, step_sequence, verdict_ids
from tests.conftest import scripted_rollouts_run


def test_each_step_is_scored_at_its_last_token_by_the_good_and_bad_logits(tiny_model):
    model, tokenizer = load_causal_lm(tiny_model)
    prompt = [{"role": "user", "content": "Which planet is closest to the sun?"}]
    steps = ["Step 1: Mercury is closest.", "Step 2: so the answer is A.\nAnswer: A"]
    ids, ends = step_sequence(tokenizer, prompt_ids(tokenizer, prompt), steps, "\n", 1024)
    assert tokenizer.decode(ids[: ends[0] + 1]).endswith(steps[0] + "\n") and ends[1] == len(ids) - 1
    good, bad = verdict_ids(tokenizer, "+", "-")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    by_hand = [torch.sigmoid(logits[e, good] - logits[e, bad]).item() for e in ends]
    # two solutions of different lengths in one padded batch score as each does alone
    scored = step_scores(model, tokenizer, prompt, [steps, steps[:1]])
    assert scored[0] == pytest.approx(by_hand, abs=1e-5) and scored[1] == pytest.approx(by_hand[:1], abs=1e-5)
    # a prompt too long loses its start, never a step; steps that do not fit are left out
    step_ids = ids[len(prompt_ids(tokenizer, prompt)) :]
    long_prompt = list(range(5000))
    short, short_ends = step_sequence(tokenizer, long_prompt, steps, "\n", len(step_ids) + 3)
    assert short == long_prompt[-3:] + step_ids and short_ends == [e - len(ids) + len(short) for e in ends]
    first, first_ends = step_sequence(tokenizer, long_prompt, steps, "\n", ends[0] - len(ids) + len(step_ids) + 3)
    assert first_ends == [len(first) - 1] and first[-1] == ids[ends[0]]  # the second step did not fit
    with pytest.raises(ValueError, match="good_token='Mercury Venus' is 4 tokens"):
        verdict_ids(tokenizer, "Mercury Venus", "-")


def test_a_trained_verifier_picks_right_solutions_a_majority_vote_misses(tmp_path, monkeypatch, tiny_model):
    from dialogue.evaluation.run import evaluate
    from dialogue.mining.export import MineConfig, mine
    from tests.test_eval import eval_config
    from tests.test_train import config
    from trainers.run import train

    # a third of the solutions are right; the wrong ones agree, so they often win a vote, and carry
    # a cue word a tiny verifier can learn
    run = scripted_rollouts_run(tmp_path / "run", monkeypatch, 100, slips=lambda request: request.seed % 3 != 0)
    monkeypatch.undo()
    export = tmp_path / "stepwise"
    mine(MineConfig(run=[str(run)], out=str(export), miner={"name": "stepwise"}))
    prm = tmp_path / "prm"
    train(
        config(
            "prm",
            export,
            tiny_model,
            prm,
            max_steps=40,
            per_device_train_batch_size=8,
            learning_rate=2e-3,
            save_steps=1000,
        )
    )

    evaluation = eval_config(
        tmp_path / "eval", "suite=verifier", f"model={prm}", f"data={export}", "dataset.split=test"
    )
    metrics = evaluate(evaluation, log=lambda *a, **k: None).suites["verifier"].metrics
    got = {name: e["value"] for name, e in metrics.items()}
    assert got["step_auroc"] > 0.9, got
    assert got["best_of_n"] == got["oracle"] > got["majority_vote"], got
    assert metrics["best_of_n"]["n"] >= 5

    wrong = evaluation.model_copy(update={"verifier": evaluation.verifier.model_copy(update={"good_token": "no such"})})
    wrong = wrong.model_copy(update={"out": str(tmp_path / "eval2")})
    with pytest.raises(AgoraError, match="verifier.good_token='no such' is"):
        evaluate(wrong, log=lambda *a, **k: None)
