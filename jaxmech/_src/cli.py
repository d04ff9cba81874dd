"""The ``jaxmech`` command line: thin — parse, validate, call ``runs.run``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jaxmech._src import config as cfg

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxmech",
        description="Monte Carlo audits of ex post incentive compatible mechanisms with interdependent values.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="audit the mechanism a TOML config describes and write a results folder")
    r.add_argument("config", help="path to a TOML config (see configs/)")
    r.add_argument("--out", help="results folder (default: results/<name>-<time>)")
    r.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. audit.profiles=1e6"
    )
    r.add_argument("--json", action="store_true", help="print metrics.json instead of the summary table")
    sub.add_parser("list", help="environments, priors, mechanisms and misreport strategies, with their options")
    c = sub.add_parser("certify", help="CE Thm 1: is the configured decision rule ex post implementable? (exit 1 if not)")
    c.add_argument("config", help="path to a TOML config")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    c.add_argument("--profiles", type=int, default=256, help="sampled s_-i per agent (default 256)")
    c.add_argument("--points", type=int, default=65, help="own-signal grid points per dimension (default 65)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _list() -> str:
    from jaxmech._src import runs

    out = []
    for title, table in (
        ("environments ([environment] kind = ...)", runs.ENVIRONMENTS),
        ("priors ([prior])", runs.PRIORS),
        ("mechanisms ([mechanism] kind = ...)", runs.MECHANISMS),
        ("misreport strategies ([audit.misreports], combined)", runs.MISREPORTS),
        ("experiments ([experiment] kind = ...)", runs.EXPERIMENTS),
    ):
        out.append(title)
        for name, e in table.items():
            opts = f"  options: {', '.join(e.options)}" if e.options else ""
            out.append(f"  {name:<22} {e.doc}{opts}")
        out.append("")
    out.append("config keys (defaults):")
    out.extend("  " + line for line in cfg.describe(cfg.Settings))
    return "\n".join(out)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        print(_list())
        return EXIT_OK
    try:
        settings, _ = cfg.load(args.config, tuple(args.set))
    except cfg.ConfigError as e:
        print(f"jaxmech: config error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "certify":
        return _certify(args, settings)
    if settings.precision == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    from jaxmech._src import engine, runs

    out_dir = Path(args.out) if args.out else runs.default_out_dir(settings)
    try:
        metrics = runs.run(
            settings,
            out_dir,
            base_dir=Path(args.config).resolve().parent,
            progress=engine.terminal_progress(settings.name),
        )
    except cfg.ConfigError as e:
        print(f"jaxmech: config error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(runs.summary(metrics))
        print(f"\nresults: {out_dir}/ (config.toml, metrics.json, manifest.json)")
    return EXIT_OK


def _certify(args, settings) -> int:
    if args.profiles < 1 or args.points < 2:
        print("jaxmech: usage error: --profiles must be >= 1 and --points >= 2", file=sys.stderr)
        return EXIT_USAGE
    if settings.precision == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    from jaxmech._src import runs

    try:
        rep = runs.certify_model(settings, Path(args.config).resolve().parent, profiles=args.profiles, points=args.points)
    except cfg.ConfigError as e:
        print(f"jaxmech: config error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(rep, indent=2) if args.json else runs.certify_summary(rep))
    return EXIT_OK if all(r["certified_share"] == 1.0 for r in rep["agents"]) else EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
