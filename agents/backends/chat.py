"""Chat-template details shared by the backends that apply templates themselves."""

from __future__ import annotations

from agents.requests import ChatRequest


def template_takes_system(tokenizer) -> bool:
    """Whether the model's chat template renders a system message (some reject or drop it)."""
    marker = "agora-system-probe"
    probe = [{"role": "system", "content": marker}, {"role": "user", "content": "hello"}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:  # templates reject a system role by raising their own error types
        return False
    return marker in text


def merge_system(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fold a leading system message into the first user message."""
    if not chat or chat[0]["role"] != "system":
        return chat
    system, *rest = chat
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": system["content"] + "\n\n" + rest[0]["content"]}, *rest[1:]]
    return [{"role": "user", "content": system["content"]}, *rest]


def chat_prompt_ids(tokenizer, request: ChatRequest, fold_system: bool) -> list[int]:
    """A request's prompt as token ids under the model's chat template, ready for generation;
    `fold_system` for a template that renders no system message (`template_takes_system`)."""
    chat = merge_system(request.chat()) if fold_system else request.chat()
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
