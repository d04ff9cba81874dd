"""Core layer — reduction: the host side of a streamed audit.

Each block of profiles arrives as a small dict of sums, counts and extrema
(with witnesses); :class:`Accumulator` adds blocks in block order in float64,
:class:`_Reduction` keeps a run's totals by segment, and the checkpoint helpers
save and restore those totals so a run killed and resumed ends with the
numbers of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


class Accumulator:
    """Adds per-block statistics in block order, in float64 on the host.

    The order of additions is the block order whatever the chunk size or the
    number of devices, so totals are bit-identical across both.
    """

    def __init__(self):
        self.totals: dict[str, Any] = {}

    def add_chunk(self, stats: dict[str, np.ndarray], first_block: int, block_size: int) -> None:
        nb = len(stats["n_sum"])
        for b in range(nb):
            if stats["n_sum"][b] == 0:
                continue
            self._add_block({k: v[b] for k, v in stats.items()}, first_block + b, block_size)

    def _add_block(self, blk: dict[str, np.ndarray], block: int, block_size: int) -> None:
        tot = self.totals
        for k, v in blk.items():
            if k.endswith(("_sum", "_sumsq", "_count")):
                v = np.asarray(v, np.float64)
                tot[k] = tot[k] + v if k in tot else v
        for k in blk:
            if not (k.endswith("_max") or k.endswith("_min")):
                continue
            largest = k.endswith("_max")
            v = np.asarray(blk[k], np.float64)
            wit = {w: np.asarray(blk[w]) for w in blk if w.startswith(k + "_at_")}
            gidx = block * block_size + np.asarray(blk[f"{k}_at_index"], np.int64)
            wit[f"{k}_at_index"] = gidx
            if k not in tot:
                tot[k] = v.copy()
                for w, x in wit.items():
                    tot[w] = np.array(x, copy=True)
                continue
            better = v > tot[k] if largest else v < tot[k]
            if not np.any(better):
                continue
            tot[k] = np.where(better, v, tot[k])
            for w, x in wit.items():
                mask = better.reshape(better.shape + (1,) * (x.ndim - better.ndim))
                tot[w] = np.where(mask, x, tot[w])


class Checkpoint(NamedTuple):
    """Where and how often :func:`stream` saves its running reductions, and whether to resume from them.

    Attributes:
      path: the checkpoint file (``.npz``); one per process in a multi-process run.
      every_s: seconds between saves (0: after every chunk).
      fingerprint: what the numbers depend on (e.g. a hash of the resolved config);
        resuming a checkpoint with another fingerprint is an error.
      resume: start from ``path`` if it exists.
      meta: extra JSON-ready data stored with the state (e.g. the config, to resume from).
    """

    path: Path
    every_s: float = 300.0
    fingerprint: str = ""
    resume: bool = False
    meta: dict | None = None


class _Reduction:
    """Running reductions of one process: closed segments' totals (in segment order) and the open segment.

    Totals are exact functions of the blocks: blocks add up in block order within a
    segment, segments in segment order (:func:`_merge`), whatever the chunking, the
    devices, the processes, or where a run was interrupted and resumed.
    """

    def __init__(self, segment_blocks: int, merge_closed: bool):
        self.segment_blocks = segment_blocks
        self.merge_closed = merge_closed  # single process: keep one running total (flat memory)
        self.closed: list[dict] = []  # totals of closed segments, in order (merged into one when merge_closed)
        self.open = Accumulator()
        self.open_segment = -1

    def add_chunk(self, stats: dict[str, np.ndarray], first_block: int, block_size: int) -> None:
        nb = len(stats["n_sum"])
        i = 0
        while i < nb:
            seg = (first_block + i) // self.segment_blocks
            j = min(nb, (seg + 1) * self.segment_blocks - first_block)
            if seg != self.open_segment:
                self.close()
                self.open_segment = seg
            _add_blocks(self.open.totals, {k: v[i:j] for k, v in stats.items()}, first_block + i, block_size)
            i = j

    def close(self) -> None:
        if self.open.totals:
            if self.merge_closed and self.closed:
                _merge(self.closed[0], self.open.totals)
            else:
                self.closed.append(self.open.totals)
        self.open = Accumulator()

    def state(self) -> dict[str, np.ndarray]:
        out = {f"closed{j}::{k}": v for j, tot in enumerate(self.closed) for k, v in tot.items()}
        out.update({f"open::{k}": v for k, v in self.open.totals.items()})
        out["open_segment"] = np.asarray(self.open_segment)
        out["n_closed"] = np.asarray(len(self.closed))
        return out

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        self.closed = [{} for _ in range(int(arrays["n_closed"]))]
        self.open = Accumulator()
        self.open_segment = int(arrays["open_segment"])
        for name, v in arrays.items():
            if "::" not in name:
                continue
            where, k = name.split("::", 1)
            (self.open.totals if where == "open" else self.closed[int(where[6:])])[k] = np.array(v)


def _add_blocks(tot: dict, stats: dict[str, np.ndarray], first_block: int, block_size: int) -> None:
    """Add consecutive blocks into ``tot``: the numbers of :meth:`Accumulator.add_chunk`, vectorized over blocks.

    Sums are float64 running sums in block order (``np.cumsum`` adds strictly in order); an extremum
    moves only to a strictly better value, the earliest block winning ties (``argmax`` returns the
    first); blocks without valid profiles are skipped. One pass of NumPy per key instead of a Python
    loop per block keeps the host ahead of fast devices.
    """
    keep = np.asarray(stats["n_sum"]) != 0
    if not np.any(keep):
        return
    ids = np.flatnonzero(keep)
    stats = {k: np.asarray(v)[ids] for k, v in stats.items()}
    for k, v in stats.items():
        if k.endswith(("_sum", "_sumsq", "_count")):
            v = v.astype(np.float64)
            tot[k] = np.cumsum(v if k not in tot else np.concatenate([tot[k][None], v]), axis=0)[-1]
    for k, v in stats.items():
        if not k.endswith(("_max", "_min")):
            continue
        largest = k.endswith("_max")
        v = v.astype(np.float64)
        wit = {w: x for w, x in stats.items() if w.startswith(k + "_at_")}
        gidx = (first_block + ids).reshape((-1,) + (1,) * (v.ndim - 1)) * block_size
        wit[f"{k}_at_index"] = gidx + wit[f"{k}_at_index"].astype(np.int64)
        if k not in tot:  # the first block starts the extremum as it is (NaN included)
            tot[k] = v[0].copy()
            for w, x in wit.items():
                tot[w] = np.array(x[0], copy=True)
            v, wit = v[1:], {w: x[1:] for w, x in wit.items()}
            if len(v) == 0:
                continue
        fill = -np.inf if largest else np.inf
        clean = np.where(np.isnan(v), fill, v)  # NaN never improves (as in a strict comparison)
        j = np.argmax(clean, axis=0) if largest else np.argmin(clean, axis=0)  # first best block per element
        cand = np.take_along_axis(clean, j[None], axis=0)[0]
        better = cand > tot[k] if largest else cand < tot[k]
        if not np.any(better):
            continue
        tot[k] = np.where(better, cand, tot[k])
        for w, x in wit.items():
            jj = j.reshape((1,) + j.shape + (1,) * (x.ndim - 1 - j.ndim))
            pick = np.take_along_axis(x, np.broadcast_to(jj, (1,) + x.shape[1:]), axis=0)[0]
            mask = better.reshape(better.shape + (1,) * (pick.ndim - better.ndim))
            tot[w] = np.where(mask, pick, tot[w])


def _merge(total: dict, later: dict) -> None:
    """Add the totals of a later stretch of blocks into ``total`` (sums add; the earlier extremum wins ties)."""
    acc = Accumulator()
    acc.totals = total
    acc._add_block(later, 0, 1)  # block 0: witness indices are already global


def _save_state(ck: Checkpoint, red: _Reduction, meta: dict) -> None:
    path = Path(ck.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.asarray(json.dumps(meta)), **red.state())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a kill mid-write leaves the previous checkpoint


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (truncated, garbled) or belongs to another run."""


def _read_checkpoint(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a checkpoint file; :class:`CheckpointError` (one line) when it is damaged."""
    if Path(path).exists() and not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is damaged (not an .npz archive: truncated or overwritten): "
                              "delete it and rerun")  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
        int(meta["next_block"])
    except FileNotFoundError:
        raise
    except Exception as e:  # BadZipFile, EOFError, pickle / JSON / key errors of a truncated or garbled file
        raise CheckpointError(
            f"checkpoint {path} is damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}): "
            "delete it and rerun"
        ) from None
    return meta, arrays


def read_checkpoint_meta(path: str | Path) -> dict:
    """The JSON metadata stored in a checkpoint file (fingerprint, next block, caller's ``meta``)."""
    return _read_checkpoint(path)[0]


def _load_state(ck: Checkpoint, red: _Reduction, expect: dict) -> int:
    """Restore ``red`` from ``ck.path``; returns the next block. Raises :class:`CheckpointError` on a mismatch."""
    meta, arrays = _read_checkpoint(ck.path)
    for k, v in expect.items():
        if meta.get(k) != v:
            raise CheckpointError(f"checkpoint {ck.path}: {k} is {meta.get(k)!r}, this run has {v!r}; cannot resume")
    try:
        red.load(arrays)
    except Exception as e:
        raise CheckpointError(f"checkpoint {ck.path} is damaged ({type(e).__name__}): delete it and rerun") from None
    return int(meta["next_block"])
