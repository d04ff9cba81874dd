"""Results folders that are never lost: refuse to overwrite, lock while in use, write atomically, strict JSON.

A results folder holds one run (``config.toml``, ``metrics.json``, ``manifest.json``, plots, and while an
audit runs ``checkpoint/``). :func:`claim` is the one way into a folder for writing:

* a folder that already holds a run is refused unless the caller overwrites it or resumes it;
* a lock file (``.lock-<process>``, ``fcntl.flock``: released by the OS when the holder dies) stops a
  second process from writing or resuming the same folder; the second is told who holds it;
* :func:`write_text` writes beside the target and renames into place, so a kill never leaves half a file;
* :func:`strict_json` turns NaN / infinity into ``null`` (``metrics.json`` is standard JSON).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RUN_FILES = ("metrics.json", "config.toml", "manifest.json", "checkpoint")


class ResultsError(ValueError):
    """A results folder that cannot be used as asked (one line: the folder and what to do)."""


def check_name(name: str) -> str:
    """A run name that stays inside ``results/``: no path separators, no ``..``, no leading dot."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise ResultsError(
            f"name = {name!r}: a run name is one folder name inside results/ (no '/', '\\\\' or leading '.'); "
            "use --out to choose another place"
        )
    return name


def holds_run(out_dir: Path) -> str | None:
    """The first file or folder showing that ``out_dir`` holds a run, or ``None``."""
    for f in RUN_FILES:
        if (out_dir / f).exists():
            return f
    return None


@contextlib.contextmanager
def claim(out_dir: Path, *, overwrite: bool = False, resume: bool = False, process: int = 0) -> Iterator[Path]:
    """Create / check ``out_dir`` and hold its lock for the ``with`` block.

    Raises :class:`ResultsError` when the path is a file, cannot be created or written, already holds a
    run (without ``overwrite`` / ``resume``), or is locked by another live process.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ResultsError(f"--out {out_dir}: is a file, not a folder")
    if not resume and not overwrite:
        found = holds_run(out_dir) if out_dir.is_dir() else None
        if found is not None:
            raise ResultsError(
                f"{out_dir} already holds a run ({found}): choose another --out, add --overwrite to replace it"
                + (", or jaxmech run --resume " + str(out_dir) if found == "checkpoint" else "")
            )
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock_path = out_dir / f".lock-{process}"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ResultsError(f"cannot write results to {out_dir}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise ResultsError(
                f"{out_dir} is in use by {holder} (lock {lock_path}): wait for it or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}".encode(), 0)
        try:
            yield out_dir
        finally:
            with contextlib.suppress(OSError):
                lock_path.unlink()
    finally:
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if the run left nothing behind


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def strict_json(x: Any) -> Any:
    """``x`` with every NaN / infinite float replaced by ``None`` (standard JSON has neither)."""
    if isinstance(x, dict):
        return {k: strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [strict_json(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def dumps(x: Any) -> str:
    """Indented standard JSON of ``x`` (NaN / infinity as ``null``)."""
    return json.dumps(strict_json(x), indent=2, allow_nan=False)
