"""Layer 7 — runs: settings -> (environment, prior, mechanism) -> experiment -> results folder.

``run(settings, out_dir)`` is a pure function of its inputs apart from the
files it writes: ``config.toml`` (the resolved settings), ``metrics.json`` (the
experiment's metrics) and ``manifest.json`` (versions, device, seed, git
revision, timings). What each ``experiment.kind`` computes lives in its module
under :mod:`jaxmech._src.app.kinds` (registry: ``kinds.KINDS``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import jax

from jaxmech import __version__
from jaxmech._src.app import config as cfg
from jaxmech._src.app import kinds, plots, results_dir
from jaxmech._src.app.kinds.certify import certify_model, certify_summary
from jaxmech._src.core import engine, reduction

__all__ = [
    "METRICS_SCHEMA_VERSION",
    "certify_model",
    "certify_summary",
    "checkpoint_path",
    "default_out_dir",
    "manifest",
    "resume_settings",
    "run",
    "summary",
]

METRICS_SCHEMA_VERSION = 1


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(settings: cfg.Settings, wall_s: float, info: engine.StreamInfo | None) -> dict:
    import jaxlib

    devs = jax.devices()
    m = {
        "jaxmech": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device_kind": devs[0].device_kind,
        "device_count": len(devs),
        "seed": settings.seed,
        "precision": settings.precision,
        "git_revision": _git_revision(),
        "wall_s": wall_s,
        "argv": sys.argv,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    if info is not None:
        m.update(
            {
                "compile_s": info.compile_s,
                "run_s": info.run_s,
                "n_chunks": info.n_chunks,
                "blocks_per_chunk": info.blocks_per_chunk,
                "profiles_per_s": info.n_profiles / max(info.run_s, 1e-12),
                "n_processes": info.n_processes,
                "resumed_at_block": info.resumed_at_block,
                "fast_compile": info.fast_compile,  # audit.fast_compile as resolved ("auto": by profile count)
            }
        )
    return m


def checkpoint_path(out_dir: Path, process: int | None = None) -> Path:
    """The checkpoint file of this process (or of ``process``) in a results folder."""
    return Path(out_dir) / "checkpoint" / f"process-{jax.process_index() if process is None else process}.npz"


def resume_settings(out_dir: Path) -> tuple[cfg.Settings, Path | None]:
    """The settings and config folder of the interrupted run in ``out_dir``, read from its checkpoint."""
    path = checkpoint_path(out_dir)
    if not path.exists():  # this process may not have saved yet (or had no share): the config is the same in all
        path = next(iter(sorted(path.parent.glob("process-*.npz"))), path)
    if not path.exists():
        if (Path(out_dir) / "metrics.json").exists():
            raise cfg.ConfigError(f"--resume {out_dir}: the run is complete (metrics.json is there)")
        raise cfg.ConfigError(
            f"--resume {out_dir}: no checkpoint {path} (a run writes its first after --checkpoint-every)"
        )
    meta = reduction.read_checkpoint_meta(path)["meta"]
    settings = cfg.parse(cfg.Settings, tomllib.loads(meta["config"]))
    return settings, Path(meta["base_dir"]) if meta.get("base_dir") else None


def _checkpoint(settings: cfg.Settings, out_dir: Path, base_dir: Path | None, every_s: float, resume: bool):
    if not kinds.get(settings.experiment.kind).checkpoints:
        able = ", ".join(k.name for k in kinds.KINDS.values() if k.checkpoints)
        raise cfg.ConfigError(f"--resume: only {able} runs checkpoint (experiment.kind = {settings.experiment.kind!r})")
    config = cfg.dump_toml(cfg.to_dict(settings))
    return reduction.Checkpoint(
        path=checkpoint_path(out_dir),
        every_s=every_s,
        fingerprint=hashlib.sha256(config.encode()).hexdigest(),
        resume=resume,
        meta={"config": config, "base_dir": None if base_dir is None else str(Path(base_dir).resolve())},
    )


def run(
    settings: cfg.Settings,
    out_dir: Path,
    *,
    base_dir: Path | None = None,
    progress=None,
    checkpoint_every: float | None = None,
    resume: bool = False,
) -> dict:
    """Run the experiment the settings describe; write ``config.toml``, ``metrics.json``, ``manifest.json``, plots.

    Returns the metrics dict. Nothing is written if the settings do not build
    (an unregistered ``experiment.kind`` included). Kinds that checkpoint
    (``Kind.checkpoints``: audit) save their running reductions to
    ``out_dir/checkpoint/`` every ``checkpoint_every`` seconds (``None``: never)
    and, with ``resume``, continue from there, ending with the numbers of an
    uninterrupted run. In a multi-process run (``jax.distributed``) every
    process computes its share and process 0 alone writes the results.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    staging = out_dir / f".staging-{os.getpid()}"  # plots are made here and renamed into place at the end
    kind = kinds.get(settings.experiment.kind)
    runner = kind.run
    ck = None
    if resume or (checkpoint_every is not None and kind.checkpoints):
        ck = _checkpoint(settings, out_dir, base_dir, 300.0 if checkpoint_every is None else checkpoint_every, resume)
        runner = functools.partial(runner, checkpoint=ck)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        body, info, figs = runner(settings, base_dir, progress, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if out_dir.exists() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    if ck is not None:
        ck.path.unlink(missing_ok=True)
    if jax.process_index() != 0:
        shutil.rmtree(staging, ignore_errors=True)
        return _body_metrics(settings, body, figs)
    if ck is not None and ck.path.parent.exists() and not any(ck.path.parent.iterdir()):
        ck.path.parent.rmdir()
    for f in figs:
        (staging / f).replace(out_dir / f)
    shutil.rmtree(staging, ignore_errors=True)
    wall = time.perf_counter() - t0
    metrics = _body_metrics(settings, body, figs)
    results_dir.write_text(out_dir / "config.toml", cfg.dump_toml(cfg.to_dict(settings)))
    results_dir.write_text(out_dir / "manifest.json", results_dir.dumps(manifest(settings, wall, info)) + "\n")
    results_dir.write_text(out_dir / "metrics.json", results_dir.dumps(metrics) + "\n")  # last: marks a whole run
    return metrics


def _body_metrics(settings: cfg.Settings, body: dict, figs: list[str]) -> dict:
    metrics = {"schema_version": METRICS_SCHEMA_VERSION, "name": settings.name, "experiment": settings.experiment.kind}
    metrics.update(body)
    metrics["plots"] = (
        figs if figs or not settings.experiment.plots or plots.available() else "matplotlib not installed"
    )
    return metrics


def summary(metrics: dict) -> str:
    """A readable summary of any experiment's metrics."""
    text = kinds.get(metrics.get("experiment", "audit")).summary(metrics)
    if "conditions" in metrics:
        text += "\nconditions   " + "   ".join(
            f"{k} {v['class']}" if "class" in v else f"{k} {'yes' if v['holds'] else 'NO'}"
            for k, v in metrics["conditions"].items()
        )
    if metrics.get("plots"):
        text += f"\nplots        {metrics['plots']}"
    return text


def default_out_dir(settings: cfg.Settings) -> Path:
    """``results/<name>-<time>-<pid>``; a name that would leave ``results/`` is refused."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{results_dir.check_name(settings.name)}-{stamp}-{os.getpid()}"
