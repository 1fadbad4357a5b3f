"""Load a chat model by preset name, local directory, GGUF file (see `gguf.py`), hub id or registered
source (`register_source`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from styleprobe.engine.compat import DTYPE_KEYWORD
from styleprobe.errors import StyleprobeError, first_line
from styleprobe.paths import data_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
# End-of-turn markers of common chat templates; used when present in the vocabulary as single tokens.
_END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "</s>")


class ModelLoadError(StyleprobeError, RuntimeError):
    """The model could not be resolved or loaded; the message is one line."""


@dataclass(frozen=True)
class Preset:
    name: str
    source: str
    kind: str = "instruct"
    system_role: bool = True
    thinking: bool = False
    base: str | None = None
    gpus: float = 0  # GPUs one model's Ray task holds (`styleprobe reproduce --ray`; see models.yaml)
    title: str = ""  # the model's published name, where the source does not show it (package: sources)
    note: str = ""


@dataclass
class ModelHandle:
    """A loaded model with what the pipeline needs to know about it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str
    slug: str
    kind: str = "instruct"
    system_role: bool = True
    thinking: bool = False
    end_of_turn_ids: list[int] = field(default_factory=list)
    title: str = ""

    @property
    def name(self) -> str:
        """What people call the model: the preset's title, else its hub id or file name."""
        return self.title or self.model_id.removeprefix("package:")

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype_name(self) -> str:
        """The weights' dtype, e.g. "bfloat16"."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    @property
    def n_layers(self) -> int:
        return len(decoder_layers(self.model))

    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    @cached_property
    def think_ids(self) -> tuple[int | None, int | None]:
        """Token ids of `<think>` and `</think>` (None where the vocabulary lacks them), looked up once."""
        vocab = self.tokenizer.get_vocab()
        return vocab.get("<think>"), vocab.get("</think>")

    @property
    def uses_chat_template(self) -> bool:
        return self.kind != "base" and bool(getattr(self.tokenizer, "chat_template", None))


def load_presets(path: Path | None = None) -> dict[str, Preset]:
    path = path or data_dir() / "models.yaml"
    raw = yaml.safe_load(path.read_text())["presets"]
    return {name: Preset(name=name, **spec) for name, spec in raw.items()}


def slugify(name: str) -> str:
    """A file-system friendly name: `Qwen/Qwen2.5-7B-Instruct` -> `qwen2.5-7b-instruct`."""
    stem = name.rstrip("/").split("/")[-1]
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9.]+", "-", stem.lower()).strip("-.") or "model"


def model_slug(model: str) -> str:
    """The name a model's files go under (axes/<slug>.json, runs/<slug>/, results/<slug>.json), known
    before it loads: its preset name, else its slug."""
    return model if model in load_presets() else slugify(model)


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The list of decoder blocks (residual stream after block i = output of layers[i])."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, torch.nn.ModuleList):
        return layers
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ModelLoadError(f"cannot find the decoder layers of {type(model).__name__}")
    return max(lists, key=len)


DTYPES = ("bfloat16", "float16", "float32")


def check_device(device: str) -> str:
    """`device` if it names a device this machine has (cpu, mps, cuda, cuda:N); else ModelLoadError."""
    m = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", device)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ModelLoadError(f"unknown device {device!r}; use cpu, mps, cuda or cuda:N")
    if m.group(1) == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(m.group(2) or 0) >= count:
            raise ModelLoadError(f"device {device!r} is not available: this machine has {count} CUDA GPUs")
    if m.group(1) == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' is not available on this machine")
    return device


def _dtype(dtype: torch.dtype | str | None, device: str) -> torch.dtype:
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), with which torch runs bf16
    matrix products natively instead of converting them (then bf16 is slower than float32)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence looked up with care
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def default_dtype(device: str) -> torch.dtype:
    """bfloat16 where the hardware computes in it natively: a GPU with bf16 (float16 on older ones, e.g.
    T4), a CPU with AVX512-BF16 or AMX (1.6-2x float32's speed, benchmarks/RESULTS.md); float32 on
    other CPUs and on Apple GPUs."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return torch.bfloat16 if device == "cpu" and cpu_computes_bf16() else torch.float32


def cache_dir() -> Path:
    """$STYLEPROBE_CACHE, else the user's cache folder (platformdirs, imported only then)."""
    if "STYLEPROBE_CACHE" in os.environ:
        return Path(os.environ["STYLEPROBE_CACHE"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("styleprobe"))


ModelLoader = Callable[..., ModelHandle]
"""`loader(rest_of_name, *, device, dtype, revision, trust_remote_code) -> ModelHandle`, `dtype` None where
none was asked for (the source picks its default); a loader is also given `model_args` when there are any
(see `load_model`)."""
_SOURCES: dict[str, ModelLoader] = {}
# Prefixes whose source lives outside the production load path: what to do when it is not registered.
_UNREGISTERED = {
    "random:": "tiny random-init test models are registered by styleprobe.testing "
    "(import it, or use --profile smoke)",
}


def register_source(prefix: str, loader: ModelLoader) -> None:
    """Route model names starting with `prefix` (e.g. `random:`) to `loader`, called by `load_model` with the
    rest of the name and load_model's keyword arguments, before presets, local folders and the hub are
    looked at. Registering a prefix again replaces its loader."""
    if not prefix:
        raise ValueError("a model source needs a non-empty prefix")
    _SOURCES[prefix] = loader


def resolve(name: str) -> tuple[str | Path, Preset | None]:
    """Map a user's model name to something `from_pretrained` can load, and its preset if any."""
    from styleprobe.engine.gguf import dequantised_copy, package_gguf  # here: gguf.py imports this module

    for prefix, hint in _UNREGISTERED.items():
        if name.startswith(prefix) and prefix not in _SOURCES:
            raise ModelLoadError(f"cannot load {name!r}: {hint}")
    presets = load_presets()
    if name in presets:
        preset = presets[name]
        if preset.source.startswith("package:"):
            return dequantised_copy(package_gguf(preset.source.removeprefix("package:"))), preset
        return preset.source, preset
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return dequantised_copy(path.resolve()), None
    if path.is_dir():
        return path, None
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return name, None  # a hub id
    sources = "".join(f"{prefix}<name>, " for prefix in _SOURCES)
    raise ModelLoadError(
        f"unknown model {name!r}: not a preset ({', '.join(presets)}), {sources}a local directory, "
        "a .gguf file or a hub id like Qwen/Qwen2.5-7B-Instruct"
    )


def end_of_turn_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends an assistant turn: the generation config's eos ids, the tokenizer's, and the
    end-of-turn marker of the chat template when it is a single token."""
    ids: list[int] = []
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids += eos if isinstance(eos, list) else [eos]
    ids.append(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    template = getattr(tokenizer, "chat_template", None) or ""
    ids += [vocab[t] for t in _END_OF_TURN_TOKENS if t in vocab and t in template]
    return sorted({int(i) for i in ids if i is not None})


# from_pretrained keywords that have an option of their own, so `model_args` may not set them
OWN_OPTIONS = {
    "dtype": "dtype",
    "torch_dtype": "dtype",
    "revision": "revision",
    "trust_remote_code": "trust_remote_code",
}


def check_model_args(model_args: Mapping[str, object]) -> None:
    """Refuse a `from_pretrained` keyword that load_model sets from an option of its own."""
    for key in model_args:
        if key in OWN_OPTIONS:
            option = OWN_OPTIONS[key].replace("_", "-")
            raise ModelLoadError(f"model argument {key!r} has an option of its own: use --{option}")


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    model_args: Mapping[str, object] | None = None,
) -> ModelHandle:
    """Load a model for generation and extraction (in `default_dtype` unless `dtype` is given). A name that
    starts with a registered prefix (see `register_source`) goes to that source's loader. `model_args` are
    passed to `from_pretrained` as they are (e.g. `{"attn_implementation": "sdpa"}`); one it does not take
    is a ModelLoadError."""
    device = check_device(device) if device else default_device()
    asked, dtype = dtype, _dtype(dtype, device)  # a source gets what was asked: it may default otherwise
    model_args = dict(model_args or {})
    check_model_args(model_args)
    for prefix, loader in _SOURCES.items():
        if name.startswith(prefix):
            options = {"device": device, "dtype": asked, "revision": revision}
            if model_args:
                options["model_args"] = model_args
            return loader(name.removeprefix(prefix), trust_remote_code=trust_remote_code, **options)
    source, preset = resolve(name)
    kwargs: dict = {DTYPE_KEYWORD: dtype, "revision": revision, "trust_remote_code": trust_remote_code}
    if device.startswith("cuda"):
        kwargs["device_map"] = "auto"  # accelerate spreads models larger than one GPU
    # an unknown keyword reaches the model's __init__ as a TypeError: the user's input, not a bug
    errors = (OSError, ValueError, TypeError) if model_args else (OSError, ValueError)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=trust_remote_code
        )
        # SDPA where the architecture has it
        model = AutoModelForCausalLM.from_pretrained(source, **{**kwargs, **model_args})
    except errors as err:
        given = f" with model arguments {model_args}" if model_args else ""
        raise ModelLoadError(f"cannot load model {name!r}{given}: {first_line(err)}") from err
    if not device.startswith("cuda"):
        model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model_id = preset.source if preset else (name if isinstance(source, str) else Path(source).name)
    return ModelHandle(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id,
        slug=preset.name if preset else slugify(name),
        kind=preset.kind if preset else ("instruct" if getattr(tokenizer, "chat_template", None) else "base"),
        system_role=preset.system_role if preset else True,
        thinking=preset.thinking if preset else "enable_thinking" in (tokenizer.chat_template or ""),
        end_of_turn_ids=end_of_turn_ids(model, tokenizer),
        title=preset.title if preset else "",
    )
