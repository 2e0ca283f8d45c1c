"""The transformers backend's own generation loop against transformers' generate()."""

import pytest
import torch

from agents.backends.transformers_backend import TransformersBackend, _Request, nucleus
from agents.config import TransformersBackendConfig
from agents.requests import ChatRequest, Sampling
from tests.conftest import build_tiny_model

CONTEXT = (
    ("system", "You are in a discussion."),
    ("user", "Which planet is closest to the Sun?"),
    ("assistant", "Mercury, I think."),
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    model = build_tiny_model(tmp_path_factory.mktemp("sharp-llama"), initializer_range=0.5)
    # float32 on every machine, so the comparisons below are exact wherever they run
    return TransformersBackend(str(model), TransformersBackendConfig(batch_size=4, dtype="float32"))


def reference(backend, request):
    ids = torch.tensor([backend.prompt_ids(request)])
    out = backend.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=request.sampling.max_tokens,
        pad_token_id=backend.pad_id,
    )
    return out[0, ids.shape[1] :].tolist()


def test_greedy_matches_generate_with_shared_prefixes_and_uneven_batches(backend):
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=10)
    requests = [
        ChatRequest(CONTEXT + (("user", last),), greedy, seed=0)
        for last in ["Stand by your answer.", "Be open to changing your mind.", "Why?", "Mars."]
    ] + [
        ChatRequest((("user", "Something else entirely, and longer " * 3),), greedy, seed=0),
        ChatRequest((("user", "hi"),), Sampling(0.0, 1.0, 3), seed=0),
    ]  # other sampling: own batch
    got = backend.generate(requests)
    for request, completion in zip(requests, got, strict=True):
        expected = reference(backend, request)
        assert completion.completion_tokens == len(expected)
        assert completion.text == backend.tokenizer.decode(expected, skip_special_tokens=True).strip()


def test_rows_admitted_mid_batch_generate_what_they_generate_alone(backend):
    """Continuous batching: with room for four rows, seven requests of different lengths and
    sampling settings join as others finish; each completion equals the request run on its own."""
    requests = [
        ChatRequest((("user", f"Question {k}: " + "which planet? " * k),), Sampling(0.7 * (k % 2), 0.9, 3 + k), seed=k)
        for k in range(7)
    ]
    together = backend.generate(requests)
    for request, completion in zip(requests, together, strict=True):
        alone = backend.generate([request])[0]
        assert (completion.text, completion.completion_tokens) == (alone.text, alone.completion_tokens)
    greedy = [(r, c) for r, c in zip(requests, together, strict=True) if r.sampling.temperature == 0]
    for request, completion in greedy:
        assert completion.completion_tokens == len(reference(backend, request))


def test_prefill_gives_each_row_the_logits_of_its_unpadded_prompt(backend):
    """Padding, prefix sharing and position ids must not change what the model sees; greedy tokens
    of a random tiny model are too flat to show it, so compare the logits themselves."""
    # a prefix tree three deep, a duplicate, and a prompt that is a prefix of another's context
    lasts = ["Why?", "Mars, surely.", "Mars, surely not.", "Mars, surely not."]
    requests = [ChatRequest(CONTEXT + (("user", last),), Sampling(), seed=0) for last in lasts]
    requests.append(ChatRequest(CONTEXT[:2], Sampling(), seed=0))
    requests.append(ChatRequest((("user", "Something else entirely, and longer " * 3),), Sampling(), seed=0))
    prompts = [backend.prompt_ids(r) for r in requests]
    tickets = register(backend, requests)
    running = backend._prefill(tickets)
    logits = running.logits[torch.tensor([tickets.index(t) for t in running.rows]).argsort()]
    forget(backend, tickets)
    with torch.inference_mode():
        for row, prompt in enumerate(prompts):
            alone = backend.model(input_ids=torch.tensor([prompt])).logits[0, -1]
            torch.testing.assert_close(logits[row], alone, rtol=1e-4, atol=1e-4)


def test_siblings_are_admitted_together(backend):
    requests = [ChatRequest(CONTEXT + (("user", f"instruction {k}"),), Sampling(), seed=k) for k in range(3)]
    requests += [
        ChatRequest((("user", f"alone {k}"), ("assistant", "Yes."), ("user", "Go on.")), Sampling(), seed=k)
        for k in range(3)
    ]
    tickets = register(backend, requests)
    groups = [[tickets.index(t) for t in group] for group in backend.sibling_groups(tickets)]
    forget(backend, tickets)
    assert sorted(map(sorted, groups)) == [[0, 1, 2], [3], [4], [5]]


def test_siblings_admitted_together_read_their_shared_prompt_once(backend):
    """What the backend reports as prefix reads is what its prefill skipped: every sibling but
    the first reads the group's shared prompt, and a request alone reads nothing."""
    siblings = [
        ChatRequest(CONTEXT + (("user", f"instruction {k}"),), Sampling(max_tokens=3), seed=k) for k in range(3)
    ]
    alone = ChatRequest((("user", "alone"),), Sampling(max_tokens=3), seed=9)
    done = backend.generate([*siblings, alone])
    prompts = [backend.prompt_ids(r) for r in siblings]
    shared = next(i for i, column in enumerate(zip(*prompts, strict=False)) if len(set(column)) > 1)
    assert shared > 10  # the system message, the question and the first answer
    assert sorted(c.prefix_hit_tokens for c in done[:3]) == [0, shared, shared]
    assert done[3].prefix_hit_tokens == 0
    assert [c.prompt_tokens for c in done[:3]] == [len(p) for p in prompts]


def register(backend, requests):
    """Tickets for `requests`, known to the backend but not queued (for its private parts)."""
    tickets = list(range(10_000, 10_000 + len(requests)))
    for ticket, r in zip(tickets, requests, strict=True):
        backend._requests[ticket] = _Request(r, backend.prompt_ids(r), torch.Generator().manual_seed(r.seed), 0.0)
    return tickets


def forget(backend, tickets):
    for ticket in tickets:
        del backend._requests[ticket]


def test_requests_submitted_while_others_decode_generate_what_they_generate_alone(backend):
    """Streaming: requests handed over between decoding steps join the running batch, and each
    completion is the one its request gives alone."""
    first = [
        ChatRequest((("user", f"Start {k}: " + "go on " * k),), Sampling(0.7, 0.9, 6 + k), seed=k) for k in range(3)
    ]
    later = [
        ChatRequest(CONTEXT + (("user", f"Then {k}"),), Sampling(0.7 * (k % 2), 0.9, 5), seed=10 + k) for k in range(3)
    ]
    got = dict.fromkeys(backend.submit(first))
    for _ in range(2):
        got.update(backend.step())
    assert backend.busy()
    got.update(dict.fromkeys(t for t in backend.submit(later) if t not in got))
    while backend.busy():
        got.update(backend.step())
    for request, completion in zip(first + later, got.values(), strict=True):
        alone = backend.generate([request])[0]
        assert (completion.text, completion.completion_tokens) == (alone.text, alone.completion_tokens)


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15], [0.97, 0.01, 0.01, 0.01]])
    kept, ids = nucleus(probs, torch.tensor([0.8, 0.8]))
    assert ids[0, :2].tolist() == [0, 2] and kept[0].gt(0).sum() == 2
    assert kept[1].gt(0).sum() == 1
    everything, _ = nucleus(probs, torch.tensor([1.0, 1.0]))
    assert torch.equal(everything, probs)
