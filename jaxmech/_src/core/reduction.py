"""Core layer — reduction: typed block statistics and the host side of a streamed audit.

A block of profiles is reduced on the device to :data:`BlockStats`, a dict from a quantity's name to
:class:`Moments` (weighted sums, added across blocks) or :class:`Extremum` (the largest or smallest
value with where it occurs). The host adds blocks in block order in float64 (:func:`add_blocks`, the one
reduction), :class:`Accumulator` holds a run's totals, :class:`Reduction` keeps them by segment, and the
checkpoint helpers save and restore them, so a run killed and resumed ends with the numbers of an
uninterrupted one (docs/design.md, "Streaming and reduction").
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np


class Moments(NamedTuple):
    """Weighted sums of a per-profile quantity ``x`` over a block: ``sum = sum_b w_b x_b`` and
    ``sumsq = sum_b w_b x_b^2`` (``None`` where no standard error is wanted, e.g. a count of profiles
    above a tolerance, whose error is binomial). Added across blocks in block order (float64 on the host).
    """

    sum: Any
    sumsq: Any = None


@dataclasses.dataclass(frozen=True)
class Extremum:
    """The largest (``largest=True``) or smallest ``value`` of a per-profile quantity over a block, with where
    it occurs: ``index`` is the profile's index in its block (in the whole run once reduced) and ``witness``
    holds arrays describing that profile (e.g. ``{"profile": ..., "misreport": ...}``), each with ``value``'s
    leading shape. Across blocks an extremum moves only to a strictly better value (the earliest block wins
    ties; NaN never wins). ``largest`` is static (pytree metadata).
    """

    value: Any
    index: Any
    witness: dict = dataclasses.field(default_factory=dict)
    largest: bool = True


jax.tree_util.register_dataclass(Extremum, data_fields=["value", "index", "witness"], meta_fields=["largest"])

BlockStats = dict[str, "Moments | Extremum"]  # one block's reduction; ``stats["n"].sum`` is its profile count


class Accumulator:
    """A run's totals: the :data:`BlockStats` of its blocks added in block order, in float64 on the host.

    The order of additions is the block order whatever the chunk size or the number of devices, so
    totals are bit-identical across both.
    """

    def __init__(self):
        self.totals: BlockStats = {}

    def add_chunk(self, stats: BlockStats, first_block: int, block_size: int) -> None:
        """Add a chunk's stats (a leading block axis on every array); block ``j`` is run block ``first_block + j``."""
        add_blocks(self.totals, stats, first_block, block_size)


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


# version of the checkpoint layout (typed statistics, flattened by :func:`flatten_totals`)
CHECKPOINT_FORMAT = 2


class Reduction:
    """Running reductions of one process: closed segments' totals (in segment order) and the open segment.

    Totals are exact functions of the blocks: blocks add up in block order within a
    segment, segments in segment order (:func:`merge_totals`), whatever the chunking, the
    devices, the processes, or where a run was interrupted and resumed.
    """

    def __init__(self, segment_blocks: int, merge_closed: bool):
        self.segment_blocks = segment_blocks
        self.merge_closed = merge_closed  # single process: keep one running total (flat memory)
        self.closed: list[BlockStats] = []  # totals of closed segments, in order (merged into one when merge_closed)
        self.open = Accumulator()
        self.open_segment = -1

    def add_chunk(self, stats: BlockStats, first_block: int, block_size: int) -> None:
        nb = len(stats["n"].sum)
        i = 0
        while i < nb:
            seg = (first_block + i) // self.segment_blocks
            j = min(nb, (seg + 1) * self.segment_blocks - first_block)
            if seg != self.open_segment:
                self.close()
                self.open_segment = seg
            self.open.add_chunk(jax.tree.map(lambda v, i=i, j=j: v[i:j], stats), first_block + i, block_size)
            i = j

    def close(self) -> None:
        if self.open.totals:
            if self.merge_closed and self.closed:
                merge_totals(self.closed[0], self.open.totals)
            else:
                self.closed.append(self.open.totals)
        self.open = Accumulator()

    def state(self) -> dict[str, np.ndarray]:
        out = {f"closed{j}::{k}": v for j, tot in enumerate(self.closed) for k, v in flatten_totals(tot).items()}
        out.update({f"open::{k}": v for k, v in flatten_totals(self.open.totals).items()})
        out["open_segment"] = np.asarray(self.open_segment)
        out["n_closed"] = np.asarray(len(self.closed))
        return out

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        closed: list[dict] = [{} for _ in range(int(arrays["n_closed"]))]
        opened: dict = {}
        self.open_segment = int(arrays["open_segment"])
        for name, v in arrays.items():
            if "::" not in name:
                continue
            where, k = name.split("::", 1)
            (opened if where == "open" else closed[int(where[6:])])[k] = np.array(v)
        self.closed = [unflatten_totals(t) for t in closed]
        self.open = Accumulator()
        self.open.totals = unflatten_totals(opened)


def add_blocks(tot: BlockStats, stats: BlockStats, first_block: int, block_size: int) -> None:
    """Add consecutive blocks (a leading block axis on every array of ``stats``) into the totals ``tot``.

    Sums are float64 running sums in block order (``np.cumsum`` adds strictly in order); an extremum
    moves only to a strictly better value, the earliest block winning ties (``argmax`` returns the
    first) and NaN never winning; its ``index`` becomes the profile's index in the run,
    ``(first_block + j) * block_size + index``. Blocks without valid profiles (``stats["n"].sum == 0``)
    are skipped. One pass of NumPy per quantity instead of a Python loop per block keeps the host ahead
    of fast devices.
    """
    keep = np.asarray(stats["n"].sum) != 0
    if not np.any(keep):
        return
    ids = np.flatnonzero(keep)
    stats = jax.tree.map(lambda v: np.asarray(v)[ids], stats)
    for k, st in stats.items():
        if isinstance(st, Moments):
            old = tot.get(k, Moments(None, None))
            tot[k] = Moments(_running_sum(old.sum, st.sum), _running_sum(old.sumsq, st.sumsq))
        elif isinstance(st, Extremum):
            _add_extremum(tot, k, st, first_block + ids, block_size)
        else:
            raise TypeError(f"block statistic {k!r} is a {type(st).__name__}: expected Moments or Extremum")


def _running_sum(total, x):
    if x is None:
        return None
    x = x.astype(np.float64)
    return np.cumsum(x if total is None else np.concatenate([total[None], x]), axis=0)[-1]


def _add_extremum(tot: BlockStats, k: str, st: Extremum, blocks: np.ndarray, block_size: int) -> None:
    v = st.value.astype(np.float64)
    gidx = blocks.reshape((-1,) + (1,) * (v.ndim - 1)) * block_size + st.index.astype(np.int64)
    wit = dict(st.witness)
    if k not in tot:  # the first block starts the extremum as it is (NaN included)
        tot[k] = Extremum(v[0].copy(), np.array(gidx[0], copy=True), {w: np.array(x[0], copy=True) for w, x in wit.items()},
                          st.largest)  # fmt: skip
        v, gidx, wit = v[1:], gidx[1:], {w: x[1:] for w, x in wit.items()}
        if len(v) == 0:
            return
    cur = tot[k]
    fill = -np.inf if st.largest else np.inf
    clean = np.where(np.isnan(v), fill, v)  # NaN never improves (as in a strict comparison)
    j = np.argmax(clean, axis=0) if st.largest else np.argmin(clean, axis=0)  # first best block per element
    cand = np.take_along_axis(clean, j[None], axis=0)[0]
    better = cand > cur.value if st.largest else cand < cur.value
    if not np.any(better):
        return

    def pick(x, old):
        jj = j.reshape((1,) + j.shape + (1,) * (x.ndim - 1 - j.ndim))
        new = np.take_along_axis(x, np.broadcast_to(jj, (1,) + x.shape[1:]), axis=0)[0]
        return np.where(better.reshape(better.shape + (1,) * (new.ndim - better.ndim)), new, old)

    tot[k] = Extremum(np.where(better, cand, cur.value), pick(gidx, cur.index),
                      {w: pick(x, cur.witness[w]) for w, x in wit.items()}, st.largest)  # fmt: skip


def merge_totals(total: BlockStats, later: BlockStats) -> None:
    """Add the totals of a later stretch of blocks into ``total`` (sums add; the earlier extremum wins ties)."""
    add_blocks(total, jax.tree.map(lambda v: np.asarray(v)[None], later), 0, 0)  # indices are already global


def flatten_totals(tot: BlockStats) -> dict[str, np.ndarray]:
    """Totals as flat named arrays (``regret.sum``, ``regret_max.value``, ``regret_max.witness.profile``, ...)."""
    out = {}
    for k, st in tot.items():
        if isinstance(st, Moments):
            out[f"{k}.sum"] = np.asarray(st.sum)
            if st.sumsq is not None:
                out[f"{k}.sumsq"] = np.asarray(st.sumsq)
        else:
            sense = f"{k}.{'max' if st.largest else 'min'}"
            out[f"{sense}.value"] = np.asarray(st.value)
            out[f"{sense}.index"] = np.asarray(st.index)
            out.update({f"{sense}.witness.{w}": np.asarray(x) for w, x in st.witness.items()})
    return out


def unflatten_totals(arrays: dict[str, np.ndarray]) -> BlockStats:
    """The inverse of :func:`flatten_totals`."""
    parts: dict[str, dict] = {}
    for name, v in arrays.items():
        k, rest = name.split(".", 1)
        parts.setdefault(k, {})[rest] = v
    tot: BlockStats = {}
    for k, p in parts.items():
        if "sum" in p:
            tot[k] = Moments(p["sum"], p.get("sumsq"))
            continue
        sense = "max" if "max.value" in p else "min"
        wit = {r.split(".", 2)[2]: x for r, x in p.items() if r.startswith(f"{sense}.witness.")}
        tot[k] = Extremum(p[f"{sense}.value"], p[f"{sense}.index"], wit, sense == "max")
    return tot


def save_state(ck: Checkpoint, red: Reduction, meta: dict) -> None:
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


def load_state(ck: Checkpoint, red: Reduction, expect: dict) -> int:
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
