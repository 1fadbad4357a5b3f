"""Files that are either whole or absent: atomic writes, and run stages saved one finished batch at a time.
A write that fails (a full disk, a read-only folder) is a WriteError naming the file, one line for the user.

Several processes may share one root (runs, axes, results, the model cache) at once: every file is written
to a temporary name and renamed into place, and every read-modify-write or check-then-create holds an
exclusive lock: `filelock.FileLock`, i.e. `flock`, which excludes other processes and threads, and which
the kernel releases when its holder dies, so a crash leaves no stale lock (`SoftFileLock` would, hence not
that); Linux NFS clients map `flock` to NFS byte-range locks, so it also holds across machines there. The
lock files are empty and stay in place (removing one would race with a waiter), are named `<target>.lock`,
and are kept out of git (`*.lock` in .gitignore):

- `<stage>/manifest.json.lock`: creating or checking a run stage's manifest (`Stage`);
- `axes/<name>.lock`: writing an axes pair `<name>.json` + `<name>.safetensors`, and reading one again
  whose SHA-256 did not match (`axes.py`); readers never make a lock file, so inputs need none beside them;
- `results/<slug>.json.lock`: updating one section of a results file (`results.update_results`);
- `<cache>/models/<name>.lock`: building a cached model folder once (`gguf.py`, `styleprobe.testing`);
- `<cache>/gguf/<file>.gguf.lock`: reassembling a split GGUF file once (`gguf.assemble_parts`);
- `<cache>/file-hashes.json.lock`: the index of remembered file hashes (`file_sha256`, for gguf.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from filelock import FileLock
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from styleprobe.errors import StyleprobeError, first_line


class RunMismatchError(StyleprobeError, ValueError):
    """A run directory holds work done with other settings; the message is one line."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp's own files are private (0600)


class WriteError(StyleprobeError, OSError):
    """A file could not be written (a full disk, a read-only folder, ...); the message is one line naming it.
    Also an OSError, so code that may fail to write (an optional cache) still catches it as one."""

    def __init__(self, path: Path, err: OSError):
        super().__init__(f"cannot write {path}: {err.strerror or first_line(err)}")
        self.errno = err.errno


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """An OSError of the block (a full disk, a read-only folder, ...) as a WriteError naming `path`."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        raise WriteError(path, err) from err


def check_writable(*folders: Path) -> None:
    """Refuse folders that files cannot be written into (a read-only root, a folder without write
    permission), before any work: a WriteError naming the first. A folder that does not exist yet must be
    creatable, i.e. the nearest existing folder above it writable."""
    for folder in folders:
        existing = Path(folder).absolute()
        while not existing.exists():
            existing = existing.parent
        if not os.access(existing, os.W_OK | os.X_OK):
            raise WriteError(folder, OSError(errno.EACCES, f"{existing} is read-only or not writable"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it into place. Failing (a
    WriteError), it leaves `path` as it was and no temporary file."""
    path = Path(path)
    with writing(path):
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


def lock_path(target: Path) -> Path:
    """The lock file that guards `target`: `<target>.lock` beside it."""
    target = Path(target)
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def locked(target: Path, *, optional: bool = False) -> Iterator[None]:
    """Hold the exclusive lock `<target>.lock` for the block, waiting for it as long as it takes.

    `optional=True`: where the lock file cannot be created (a read-only folder), the block runs unlocked.
    That is safe for readers, since files are only ever replaced whole, and for a check-then-create whose
    create could not succeed there anyway."""
    lock = lock_path(target)
    try:
        with writing(lock):
            lock.parent.mkdir(parents=True, exist_ok=True)
            held: FileLock | None = FileLock(str(lock))
            held.acquire()
    except OSError:
        if not optional:
            raise
        held = None
    try:
        yield
    finally:
        if held is not None:
            held.release()


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target` to fill; it becomes `target` only if the block succeeds.

    If `target` exists by then, another process finished first: its folder is kept and ours is dropped
    (first writer wins; both were built from the same inputs). `build_once` avoids building twice."""
    target = Path(target)
    with writing(target):  # the block's own OSErrors too: it fills the folder
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
        try:
            yield tmp
            try:
                os.replace(tmp, target)
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """The folder `target`, built by `build(tmp)` into a temporary folder and renamed into place if it is
    not there yet. Concurrent callers wait on the lock `<target>.lock` and find it built: the work is done
    once, and no one sees a half-built folder."""
    target = Path(target)
    if target.is_dir():
        return target
    with locked(target):
        if not target.is_dir():  # re-check: another process may have built it while we waited
            with atomic_directory(target) as tmp:
                build(tmp)
    return target


def canonical_safetensors(blob: bytes) -> bytes:
    """The safetensors file `blob` with its header's keys sorted. safetensors writes the metadata in hash
    order, which varies between processes, so identical tensors and metadata would give other bytes."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header with spaces to 8-byte alignment
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp(path: Path) -> list[int]:
    """What changes when a file's content does: its inode, size, mtime and ctime. The ctime counts: a file
    rewritten in place with its size and mtime kept (`cp -p`, `touch -r`) gets a new one, which no tool
    can set back."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read_index(index: Path) -> dict:
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: hashes are computed again
    return data if isinstance(data, dict) else {}


def remember_sha256(path: Path, digest: str, index: Path, stamp: list[int] | None = None) -> None:
    """Record `digest` as the SHA-256 of `path` in the JSON `index`, keyed on its path and checked
    against its `_stamp` (inode, size, mtime, ctime) when looked up; entries of vanished files are dropped."""
    path = Path(path).absolute()
    with locked(index):
        entries = {k: v for k, v in _read_index(index).items() if Path(k).exists()}
        entries[str(path)] = {"stamp": stamp or _stamp(path), "sha256": digest}
        write_json(index, entries)


def file_sha256(path: Path, index: Path | None = None) -> str:
    """SHA-256 of a file's content. With `index`, it is computed once and remembered by its path and
    `_stamp` (inode, size, mtime, ctime), so an unchanged file is not read again."""
    path = Path(path).absolute()
    before = _stamp(path)
    if index is not None:
        entry = _read_index(index).get(str(path))
        if isinstance(entry, dict) and entry.get("stamp") == before and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    if index is not None and _stamp(path) == before:  # not changed while we read it
        with contextlib.suppress(OSError):  # only an optimisation (the cache may be read-only)
            remember_sha256(path, digest.hexdigest(), index, before)
    return digest.hexdigest()


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_manifest(path: Path) -> dict | None:
    """A run stage's `manifest.json` ({"settings": {...}}), or None if there is none yet; a truncated or
    damaged one raises RunMismatchError naming the file."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RunMismatchError(
            f"corrupt run manifest {path} ({first_line(err)}); delete {path.parent} to run that stage again"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        raise RunMismatchError(
            f"corrupt run manifest {path} (no settings); delete {path.parent} to run that stage again"
        )
    return manifest


RECORDED_LATER = ("dtype",)  # run settings that earlier versions did not write into manifests


class Stage:
    """One stage of a run (e.g. calibration): `manifest.json` with its settings and plan, and one
    `batches/NNNNN.safetensors` per finished batch holding its arrays and, as metadata, its records.
    Re-opening a stage with other settings raises RunMismatchError instead of mixing results."""

    def __init__(self, root: Path, settings: dict):
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        settings = json.loads(json.dumps(settings))  # normalise tuples etc. to compare with what is on disk
        with locked(manifest, optional=True):  # check-and-create as one step: of concurrent runs, one writes
            found = read_manifest(manifest)
            if found is None:
                write_json(manifest, {"settings": settings})
        if found is not None:
            # a stage written before a setting was recorded is taken to have been run with it
            old = {k: settings[k] for k in RECORDED_LATER if k in settings} | found["settings"]
            if old != settings:
                keys = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise RunMismatchError(
                    f"{self.root} was run with other settings ({', '.join(keys)}); "
                    "use another run directory or delete it"
                )
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
