"""One score of an answer: the mean log-probability of its tokens after the prompt, the same for
AFT's training batches and for the assessment suite."""

import pytest
import torch

from agents.models import load_causal_lm
from agents.scoring import mean_logprobs, sequence_scores
from trainers.aft import AFTCollator

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]
SHORT, LONG = "Four.", "It is four, because two and two make four."


def test_an_answer_scores_the_same_alone_padded_and_as_a_direct_forward(tiny_model):
    model, tokenizer = load_causal_lm(tiny_model)
    together = mean_logprobs(model, tokenizer, PROMPT, [SHORT, LONG])
    alone = mean_logprobs(model, tokenizer, PROMPT, [SHORT])
    assert together[0] == pytest.approx(alone[0], abs=1e-5)  # padding changes nothing
    prefix = tokenizer(
        tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False), add_special_tokens=False
    )["input_ids"]
    answer = tokenizer(LONG + tokenizer.eos_token, add_special_tokens=False)["input_ids"]  # the end of the turn counts
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prefix + answer])).logits[0].float(), -1)
    direct = sum(logp[len(prefix) + i - 1, t].item() for i, t in enumerate(answer)) / len(answer)
    assert together[1] == pytest.approx(direct, abs=1e-4)


def test_aft_trains_on_the_scores_the_assessment_suite_measures(tiny_model):
    model, tokenizer = load_causal_lm(tiny_model)
    batch = AFTCollator(tokenizer)([{"prompt": PROMPT, "positives": [SHORT], "negatives": [LONG]}])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    trained_on = sequence_scores(logits, batch["labels"])[0].tolist()
    assert trained_on == pytest.approx(mean_logprobs(model, tokenizer, PROMPT, [SHORT, LONG]), abs=1e-5)
