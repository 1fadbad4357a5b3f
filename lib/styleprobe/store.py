"""Files that are either whole or absent: atomic writes, and run stages saved one finished batch at a time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save


class RunMismatchError(ValueError):
    """A run directory holds work done with other settings; the message is one line."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp's own files are private (0600)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target` to fill; it becomes `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


class Stage:
    """One stage of a run (e.g. calibration): `manifest.json` with its settings and plan, and one
    `batches/NNNNN.safetensors` per finished batch holding its arrays and, as metadata, its records.
    Re-opening a stage with other settings raises RunMismatchError instead of mixing results."""

    def __init__(self, root: Path, settings: dict):
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        settings = json.loads(json.dumps(settings))  # normalise tuples etc. to compare with what is on disk
        if manifest.exists():
            old = json.loads(manifest.read_text())["settings"]
            if old != settings:
                keys = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise RunMismatchError(
                    f"{self.root} was run with other settings ({', '.join(keys)}); "
                    "use another run directory or delete it"
                )
        else:
            write_json(manifest, {"settings": settings})
        self.settings = settings

    def _path(self, index: int) -> Path:
        return self.root / "batches" / f"{index:05d}.safetensors"

    def is_done(self, index: int) -> bool:
        return self._path(index).exists()

    def write(self, index: int, records: list[dict], arrays: dict[str, np.ndarray]) -> None:
        meta = {"records": json.dumps(records, ensure_ascii=False)}
        atomic_write_bytes(
            self._path(index), save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, meta)
        )

    def read(self, index: int) -> tuple[list[dict], dict[str, np.ndarray]]:
        path = self._path(index)
        try:
            with safe_open(str(path), framework="np") as fh:
                records = json.loads(fh.metadata()["records"])
                arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        except (OSError, SafetensorError, KeyError, ValueError) as err:
            raise RunMismatchError(f"corrupt batch file {path}: {err}") from None
        return records, arrays

    def read_all(self, n_batches: int) -> tuple[list[dict], dict[str, np.ndarray]]:
        parts = [self.read(i) for i in range(n_batches)]
        records = [r for recs, _ in parts for r in recs]
        keys = parts[0][1].keys() if parts else ()
        return records, {k: np.concatenate([a[k] for _, a in parts]) for k in keys}
