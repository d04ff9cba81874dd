"""The ``jaxmech`` command line: thin — parse, validate, call ``runs.run``.

The run layer (runs, build, plots, kinds) and reproduce are imported inside the subcommands
that use them, so ``--help``, usage errors and ``bench`` do not load them; these are the only function-local imports
of jaxmech modules in the package (tests/test_layers.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jaxmech._src.app import bench, results_dir
from jaxmech._src.app import config as cfg
from jaxmech._src.core import audit, engine, reduction

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNTRUSTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAIL: "a paper claim failed (reproduce) or the rule is not ex post implementable (certify)",
    EXIT_USAGE: "bad input: usage, config, user code, results folder (holds a run, in use, not writable), "
    "damaged checkpoint",
    EXIT_UNTRUSTED: "the numbers cannot be trusted: NaN / infinity, overflowing sums, or a mechanism whose menu "
    "disagrees with its decision / payment rules (nothing is written)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C / SIGINT); an audit run says how to resume",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxmech",
        description="Monte Carlo audits of ex post incentive compatible mechanisms with interdependent values.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="audit the mechanism a TOML config describes and write a results folder")
    r.add_argument("config", nargs="?", help="path to a TOML config (see configs/); omit with --resume")
    r.add_argument("--out", help="results folder (default: results/<name>-<time>)")
    r.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. audit.profiles=1e6"
    )
    r.add_argument("--json", action="store_true", help="print metrics.json instead of the summary table")
    r.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    _scale_options(r)
    sub.add_parser("list", help="environments, priors, mechanisms and misreport strategies, with their options")
    c = sub.add_parser(
        "certify", help="CE Thm 1: is the configured decision rule ex post implementable? (exit 1 if not)"
    )
    c.add_argument("config", help="path to a TOML config")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    c.add_argument("--profiles", type=int, default=256, help="sampled s_-i per agent (default 256)")
    c.add_argument("--points", type=int, default=65, help="own-signal grid points per dimension (default 65)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    rp = sub.add_parser(
        "reproduce",
        help="run every paper experiment and write report.md / report.html (exit 1 if a claim fails)",
        description="Run every registered paper experiment (configs/ + experiments/) and write report.md, a "
        "self-contained report.html, summary.json and each experiment's results folder.",
    )
    size = rp.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI sizes: a few minutes on a 2-core CPU")
    size.add_argument("--full", action="store_true", help="paper-grade sizes (1e8 profiles where it matters; a GPU)")
    rp.add_argument(
        "--only", action="append", default=[], metavar="PATTERN", help="experiments whose name matches (glob/substring)"
    )
    rp.add_argument("--out", default="results/reproduce", help="results folder (default results/reproduce)")
    rp.add_argument("--root", help="checkout holding configs/ and experiments/ (default: here, else the install)")
    rp.add_argument(
        "--jobs",
        type=int,
        help="worker processes (default: the CPU count on a CPU-only machine, 1 with an accelerator)",
    )
    rp.add_argument("--list", action="store_true", help="list the registered experiments and exit")
    bench.add_arguments(
        sub.add_parser("bench", help="workloads W1-W6: jaxmech vs NumPy, PyTorch eager, a finite-type LP tool")
    )
    return p


def _list() -> str:
    from jaxmech._src.app import build, kinds  # deferred: CLI start-up (module docstring)

    out = []
    for title, table in (
        ("environments ([environment] kind = ...)", build.ENVIRONMENTS),
        ("priors ([prior])", build.PRIORS),
        ("mechanisms ([mechanism] kind = ...)", build.MECHANISMS),
        ("misreport strategies ([audit.misreports], combined)", build.MISREPORTS),
        ("experiments ([experiment] kind = ...)", kinds.KINDS),
    ):
        out.append(title)
        for name, e in table.items():
            opts = f"  options: {', '.join(e.options)}" if e.options else ""
            out.append(f"  {name:<22} {e.doc}{opts}")
        out.append("")
    out.append("config keys (defaults):")
    out.extend("  " + line for line in cfg.describe(cfg.Settings))
    return "\n".join(out)


def _fail(kind: str, message: str, code: int) -> int:
    print(f"jaxmech: {kind}: {message}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    """The CLI; every failure a user can cause is one line on stderr with a documented exit code (EXIT_CODES)."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        hint = getattr(args, "_resume_hint", None)
        return _fail("interrupted", hint() if hint else "nothing was written", EXIT_INTERRUPTED)
    except audit.AuditError as e:
        return _fail("refused", str(e), EXIT_UNTRUSTED)
    except cfg.ConfigError as e:
        return _fail("config error", str(e), EXIT_USAGE)
    except (results_dir.ResultsError, reduction.CheckpointError) as e:
        return _fail("error", str(e), EXIT_USAGE)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        return _fail("error", f"{e.strerror or e}{where}", EXIT_USAGE)


def _dispatch(args) -> int:
    if args.command == "list":
        print(_list())
        return EXIT_OK
    if args.command == "reproduce":
        return _reproduce(args)
    if args.command == "bench":
        return bench.run_from_args(args)
    if args.command == "run":
        return _run(args)
    settings, _ = cfg.load(args.config, tuple(args.set))
    return _certify(args, settings)


def _scale_options(r: argparse.ArgumentParser) -> None:
    r.add_argument("--resume", metavar="DIR", help="continue the interrupted audit run in DIR from its checkpoint")
    r.add_argument(
        "--checkpoint-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="save the running reductions to OUT/checkpoint/ this often (audit runs; default 300, 0: every chunk)",
    )
    for flag, env, kind, what in (
        ("--coordinator", "JAXMECH_COORDINATOR", str, "host:port of process 0 (jax.distributed)"),
        ("--num-processes", "JAXMECH_NUM_PROCESSES", int, "number of processes"),
        ("--process-id", "JAXMECH_PROCESS_ID", int, "this process, 0 .. num-processes - 1"),
    ):
        r.add_argument(flag, type=kind, default=None, help=f"multi-process run: {what} (default: ${env})")


def _distributed(args) -> tuple[str, int, int] | None:
    """``(coordinator, num_processes, process_id)`` from the flags or ``JAXMECH_*``; ``None`` for one process."""
    raw = [
        args.coordinator or os.environ.get("JAXMECH_COORDINATOR"),
        args.num_processes if args.num_processes is not None else os.environ.get("JAXMECH_NUM_PROCESSES"),
        args.process_id if args.process_id is not None else os.environ.get("JAXMECH_PROCESS_ID"),
    ]
    if all(x is None for x in raw):
        return None
    if any(x is None for x in raw):
        raise ValueError("a multi-process run needs --coordinator, --num-processes and --process-id (or JAXMECH_*)")
    try:
        n, pid = int(raw[1]), int(raw[2])
    except ValueError:
        raise ValueError(f"--num-processes / --process-id must be integers, got {raw[1]!r} / {raw[2]!r}") from None
    if n < 1 or not 0 <= pid < n:
        raise ValueError(f"need --num-processes >= 1 and 0 <= --process-id < num-processes, got {n} and {pid}")
    return str(raw[0]), n, pid


def _run(args) -> int:
    """``jaxmech run``: fresh or resumed, in one process or as one of several (jax.distributed)."""
    try:
        dist = _distributed(args)
        if args.resume and (args.config or args.set):
            raise ValueError("--resume DIR continues with the config saved in DIR: give no CONFIG or --set")
        if not args.resume and not args.config:
            raise ValueError("give a CONFIG (or --resume DIR)")
        if dist is not None and dist[1] > 1 and not (args.out or args.resume):
            raise ValueError("a multi-process run needs --out (the same folder for every process)")
        if args.checkpoint_every < 0:
            raise ValueError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    except ValueError as e:
        print(f"jaxmech: usage error: {e}", file=sys.stderr)
        return EXIT_USAGE
    import jax

    if dist is not None:
        jax.distributed.initialize(*dist)  # before anything touches a device
    from jaxmech._src.app import runs  # deferred: CLI start-up (module docstring)

    if args.resume:
        out_dir = Path(args.resume)
        if not out_dir.is_dir():
            raise results_dir.ResultsError(f"--resume {out_dir}: no such folder")
        with results_dir.claim(out_dir, resume=True, process=jax.process_index()):
            settings, base_dir = runs.resume_settings(out_dir)
            metrics = _run_claimed(args, settings, base_dir, out_dir)
    else:
        settings, _ = cfg.load(args.config, tuple(args.set))
        base_dir = Path(args.config).resolve().parent
        out_dir = Path(args.out) if args.out else runs.default_out_dir(settings)
        later = jax.process_index() > 0  # process 0 checks the folder; the others join it
        with results_dir.claim(out_dir, overwrite=args.overwrite or later, process=jax.process_index()):
            metrics = _run_claimed(args, settings, base_dir, out_dir)
    if jax.process_index() != 0:
        return EXIT_OK
    if args.json:
        print(results_dir.dumps(metrics))
    else:
        print(runs.summary(metrics))
        print(f"\nresults: {out_dir}/ (config.toml, metrics.json, manifest.json)")
    return EXIT_OK


def _run_claimed(args, settings, base_dir, out_dir: Path) -> dict:
    import jax

    from jaxmech._src.app import kinds, runs  # deferred: CLI start-up (module docstring)

    if settings.precision == "float64":
        jax.config.update("jax_enable_x64", True)
    if kinds.get(settings.experiment.kind).checkpoints:
        ck = runs.checkpoint_path(out_dir)
        args._resume_hint = lambda: (
            f"resume with: jaxmech run --resume {out_dir}"
            if ck.exists()
            else f"no checkpoint saved yet (one every {args.checkpoint_every:g} s); nothing was written"
        )
    return runs.run(
        settings,
        out_dir,
        base_dir=base_dir,
        progress=engine.terminal_progress(settings.name),
        checkpoint_every=args.checkpoint_every,
        resume=bool(args.resume),
    )


def _certify(args, settings) -> int:
    if args.profiles < 1 or args.points < 2:
        print("jaxmech: usage error: --profiles must be >= 1 and --points >= 2", file=sys.stderr)
        return EXIT_USAGE
    if settings.precision == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    from jaxmech._src.app import runs  # deferred: CLI start-up (module docstring)

    rep = runs.certify_model(settings, Path(args.config).resolve().parent, profiles=args.profiles, points=args.points)
    print(results_dir.dumps(rep) if args.json else runs.certify_summary(rep))
    return EXIT_OK if all(r["certified_share"] == 1.0 for r in rep["agents"]) else EXIT_FAIL


def _reproduce(args) -> int:
    from jaxmech._src.app import reproduce as rep  # deferred: CLI start-up (module docstring)

    try:
        layout = rep.find_layout(args.root)
        found = rep.discover(layout)
        names = rep.select(found, args.only)
    except cfg.ConfigError as e:
        return _fail("error", str(e), EXIT_USAGE)
    if args.list:
        for n in names:
            print(f"{n:<44} {found[n][1].paper:<3} experiments/{found[n][0]}")
        return EXIT_OK
    if args.jobs is not None and args.jobs < 1:
        return _fail("usage error", f"--jobs must be >= 1, got {args.jobs}", EXIT_USAGE)
    import os

    import jax

    jobs = args.jobs or (min(os.cpu_count() or 1, 4) if jax.default_backend() == "cpu" else 1)
    size = "quick" if args.quick else "full" if args.full else "default"
    out = Path(args.out)
    with results_dir.claim(out, overwrite=True):  # reproduce owns its folder; a second one at once is refused
        print(f"jaxmech reproduce: {len(names)} experiments ({size} sizes, {jobs} jobs) -> {out}/", flush=True)
        summary = rep.reproduce(
            layout,
            out,
            size=size,
            only=args.only,
            names=names,
            jobs=jobs,
            log=lambda s: print(s, flush=True),
            progress_factory=engine.terminal_progress,
        )
    t = summary["totals"]
    print(
        f"\n{t[rep.PASS]} PASS, {t[rep.FAIL]} FAIL, {t[rep.INFO]} INFO, {t[rep.MEASURE]} MEASURE in "
        f"{summary['wall_s']:.0f} s; "
        f"report: {out / 'report.html'} (and report.md, summary.json)"
    )
    return rep.exit_code(summary)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
