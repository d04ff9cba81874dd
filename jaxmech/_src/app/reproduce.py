"""``jaxmech reproduce``: every paper experiment, one report (layer 7, beside the CLI).

A paper experiment is a config ``configs/<name>.toml`` plus a claims function in an ``experiments/*.py``
module, registered once in that module's ``EXPERIMENTS`` dict::

    EXPERIMENTS = {
        "ce_thm5_deficit": Experiment(thm5_claims, quick=("audit.profiles=20000",)),
    }

``thm5_claims(metrics) -> list[Claim]`` turns the run's ``metrics.json`` into one row per paper claim.
``jaxmech reproduce`` finds the modules, runs each config (``quick`` / ``full`` overrides applied), and
writes report.md, report.html, summary.json and each experiment's results folder.
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import html
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jaxmech
from jaxmech._src.app import config as cfg
from jaxmech._src.app import runs
from jaxmech._src.core import compile_options

PASS, FAIL, INFO, MEASURE = "PASS", "FAIL", "INFO", "MEASURE"
STATUSES = (PASS, FAIL, INFO, MEASURE)


class Claim(NamedTuple):
    """One row of the report: a paper statement, what the run measured, and the verdict.

    Attributes:
      source: where the paper says it, e.g. ``"CE Thm 5"``, ``"B Example 1"``, ``"CE fn. 6"``.
      claim: the statement in one line.
      measured: the measured value with its SE or 95% interval, as text (``"0.2497 ± 0.0004"``).
      reference: what it is compared with and how that was obtained (``"(1+a)/6 = 0.25, closed form"``).
      status: ``PASS`` / ``FAIL`` (a checked claim), ``INFO`` (a finding, e.g. where the text does not
        hold as written, stated with its numbers) or ``MEASURE`` (a reported quantity that is not a claim:
        timing, throughput, revenue or welfare of a mechanism; its own section of the report).
    """

    source: str
    claim: str
    measured: str
    reference: str
    status: str


def check(source: str, claim: str, measured: str, reference: str, ok: bool) -> Claim:
    """A checked claim: PASS when ``ok``."""
    return Claim(source, claim, measured, reference, PASS if ok else FAIL)


def info(source: str, claim: str, measured: str, reference: str = "") -> Claim:
    """A finding that is reported, not checked (e.g. an erratum: what the text says vs what the numbers show).

    Its text must come from the run's measured data, never be written ahead of it."""
    return Claim(source, claim, measured, reference, INFO)


def measure(source: str, quantity: str, measured: str, reference: str = "") -> Claim:
    """A reported quantity, not a paper claim (timing, throughput, revenue, welfare): the report's Measurements."""
    return Claim(source, quantity, measured, reference, MEASURE)


class Experiment(NamedTuple):
    """A registered paper experiment: its claims function and the overrides of each size.

    Attributes:
      claims: ``metrics -> list[Claim]``.
      quick: ``--set``-style overrides for ``--quick`` (CI-sized: seconds on a 2-core CPU).
      full: overrides for ``--full`` (paper-grade sizes, meant for a GPU).
      paper: ``"CE"`` (Chung & Ely 2006) or ``"B"`` (Bikhchandani 2005), for grouping in the report.
      captions: figure file name -> caption, overriding :data:`CAPTIONS`.
      cost: about how many seconds its quick run takes on a 2-core CPU (default 0: short). Only an ordering hint:
        the worker pool starts the costliest experiments first (longest-processing-time-first scheduling keeps a
        long one from running alone at the end); the report keeps the registry's order.
    """

    claims: Callable[[dict], list[Claim]]
    quick: Sequence[str] = ()
    full: Sequence[str] = ()
    paper: str = "CE"
    captions: dict | None = None
    cost: float = 0.0


def pm(x: dict, digits: int = 4) -> str:
    """``mean ± se`` of a metrics dict with ``mean`` and ``se``."""
    return f"{x['mean']:.{digits}f} ± {x['se']:.{digits}f}"


PAPERS = {
    "CE": "Chung & Ely (2006), Ex post incentive compatible mechanism design (working paper, May 17, 2006)",
    "B": "Bikhchandani (2005), The limits of ex post implementation revisited (working paper)",
}

# Default figure captions by file name; an Experiment's ``captions`` override them.
CAPTIONS = {
    "trade_region.png": "Trade region over the signal square (buyer x, seller y) with the cutoff and one profile's pivots.",
    "deficit.png": "Deficit of the mechanism over the signal square.",
    "deficits.png": "Deficit of each compared mechanism on the same profiles.",
    "deficit_sweep.png": "Expected deficit (± 2 SE) across the sweep's cases.",
    "double_auction.png": "Double auction: surviving bid strategies after iterated elimination of weakly dominated bids.",
    "search_trajectory.png": "Gradient search: welfare, deficit and the constraint along the optimizer's steps.",
    "welfare_budget_line.png": "Welfare of threshold rules along the budget line sum vbar = c, with the searched rule.",
    "provision_region.png": "Provision region of the found rule over the signal square.",
    "contribution_strategies.png": "Equilibrium contribution strategies of the Sec. 5.3 scheme.",
}


class Layout(NamedTuple):
    """Where the paper experiments live: ``root/configs/<name>.toml`` and ``root/experiments/*.py``."""

    root: Path

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def experiments(self) -> Path:
        return self.root / "experiments"


def find_layout(root: str | Path | None = None) -> Layout:
    """The repository holding configs/ and experiments/: ``root``, else the working directory, else the checkout
    this package was installed from (an editable install). Raises ``ConfigError`` when none has them."""
    here = Path(__file__).resolve().parents[3]
    for cand in [Path(root)] if root is not None else [Path.cwd(), here]:
        lay = Layout(cand.resolve())
        if lay.configs.is_dir() and lay.experiments.is_dir():
            return lay
    where = root if root is not None else f"{Path.cwd()} or {here}"
    raise cfg.ConfigError(
        f"no configs/ and experiments/ folders in {where} (run from a jaxmech checkout, or pass --root)"
    )


def _import(path: Path):
    """Load an experiments module by path; its folder is importable meanwhile (shared helpers such as
    ``experiments/_reference.py``, which discovery skips for its leading underscore)."""
    spec = importlib.util.spec_from_file_location(f"jaxmech_experiments_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(folder)
    return mod


def discover(layout: Layout) -> dict[str, tuple[str, Experiment]]:
    """Every registered experiment, ``name -> (module, Experiment)``, in file then registration order.

    Each ``experiments/*.py`` with an ``EXPERIMENTS`` dict contributes; a name registered twice or without
    its ``configs/<name>.toml`` is a ``ConfigError``.
    """
    found: dict[str, tuple[str, Experiment]] = {}
    for path in sorted(layout.experiments.glob("*.py")):
        if path.name.startswith("_"):
            continue
        table = getattr(_import(path), "EXPERIMENTS", None)
        if table is None:
            continue
        for name, exp in table.items():
            if name in found:
                raise cfg.ConfigError(f"experiment {name!r} is registered in both {found[name][0]} and {path.name}")
            if not (layout.configs / f"{name}.toml").is_file():
                raise cfg.ConfigError(f"experiment {name!r} ({path.name}) has no configs/{name}.toml")
            found[name] = (path.name, exp)
    return found


def select(found: dict, only: Sequence[str] = ()) -> list[str]:
    """Names matching any pattern in ``only``: a glob, an exact name, else a substring."""
    if not only:
        return list(found)
    pats = [p if any(c in p for c in "*?[") or p in found else f"*{p}*" for p in only]
    names = [n for n in found if any(fnmatch.fnmatchcase(n, p) for p in pats)]
    if not names:
        raise cfg.ConfigError(f"--only {' '.join(only)} matches no experiment; known: {', '.join(found)}")
    return names


def _versions() -> dict:
    import jax

    return {
        "jaxmech": jaxmech.__version__,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(jax.devices()[0].device_kind),
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
    }


# Set for every experiment under --quick (before its own overrides; recorded in each config.toml): quick audits
# are small, so their time is XLA compiles, which this makes ~1.5x faster for the same numbers.
QUICK_BASE = ("audit.fast_compile=true",)


def run_one(layout: Layout, name: str, exp: Experiment, size: str, out: Path, progress=None) -> dict:
    """Run one experiment; never raises. A failed run or claims function becomes one FAIL row with the error."""
    t0, c0 = time.perf_counter(), time.process_time()
    overrides = {"quick": exp.quick, "full": exp.full}.get(size, ())
    rec = {"name": name, "paper": exp.paper, "size": size, "overrides": list(overrides), "figures": [], "error": None}
    try:
        base = QUICK_BASE if size == "quick" else ()
        settings, _ = cfg.load(layout.configs / f"{name}.toml", (*base, *overrides))
        import jax

        x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", settings.precision == "float64")
        try:
            metrics = runs.run(settings, out / name, base_dir=layout.configs, progress=progress)
        finally:
            jax.config.update("jax_enable_x64", x64)
        rows = [Claim(*r) for r in exp.claims(metrics)]
        figs = metrics.get("plots")
        rec["figures"] = [
            {"file": f"{name}/{f}", "caption": ((exp.captions or {}).get(f) or CAPTIONS.get(f) or f)}
            for f in (figs if isinstance(figs, list) else [])
        ]
    except Exception as e:  # one experiment's failure is its row, the others go on
        err = f"{type(e).__name__}: {e}".strip()
        (out / name).mkdir(parents=True, exist_ok=True)
        (out / name / "error.txt").write_text(traceback.format_exc())
        rec["error"] = err
        rows = [Claim(f"({exp.paper})", f"experiment {name} ran", err.splitlines()[0][:300], f"{name}/error.txt", FAIL)]
    rec["wall_s"] = round(time.perf_counter() - t0, 2)
    rec["cpu_s"] = round(time.process_time() - c0, 2)
    rec["claims"] = [r._asdict() for r in rows]
    return rec


def worker_xla_flags(size: str) -> str | None:
    """The ``XLA_FLAGS`` of the worker processes at ``size`` (``None``: inherited as they are).

    ``quick`` adds :data:`compile_options.QUICK_XLA_FLAGS` whose option the user has not set (the user's value
    wins) and this jaxlib knows (:func:`compile_options.supported`): its experiments compile hundreds of
    programs that run for milliseconds each, so XLA's CPU backend skips LLVM optimization and uses its classic
    fusion emitters by default there; the programs whose run time matters ask for
    :data:`compile_options.FULL_OPTIMIZATION`. The flags are recorded in each manifest.json; set them yourself
    to rerun a quick experiment bit for bit with ``jaxmech run``."""
    if size != "quick":
        return None
    current = os.environ.get("XLA_FLAGS", "")
    names = {f.split("=", 1)[0] for f in current.split()}
    fast = compile_options.as_flags(compile_options.supported(compile_options.FAST_COMPILE))
    return " ".join([current, *(f for f in fast if f.split("=", 1)[0] not in names)]).strip()


def _worker_init(xla_flags: str | None) -> None:
    """First thing in each spawned worker, before its JAX backend starts (XLA reads its flags once).

    The worker also moves its import-time heap out of Python's cyclic garbage collector (``gc.freeze``) and
    collects young objects less often: tracing makes millions of short-lived objects, and each collection
    rescanned jax's and numpy's module graphs (~4% of a quick experiment's time under ``perf``; -2.5% CPU measured).
    """
    import gc

    if xla_flags is not None:
        os.environ["XLA_FLAGS"] = xla_flags
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _worker(root: str, name: str, size: str, out: str) -> dict:
    """Run one experiment in a worker process (rediscovering its registration there: modules are loaded by path)."""
    layout = Layout(Path(root))
    return run_one(layout, name, discover(layout)[name][1], size, Path(out))


def reproduce(
    layout: Layout,
    out: Path,
    *,
    size: str = "quick",
    only: Sequence[str] = (),
    names: Sequence[str] | None = None,
    jobs: int = 1,
    log=print,
    progress_factory=None,
) -> dict:
    """Run the experiments (``names``, else those matching ``only``, else all) at ``size`` (``quick``: CI-sized,
    ``default``: the configs' own sizes, ``full``: paper-grade) and write summary.json, report.md and report.html
    into ``out``.

    ``jobs > 1`` runs experiments in that many worker processes (spawned: each its own JAX runtime). XLA compiles
    on one thread, so on a CPU two workers nearly halve the wall time of the quick run; every experiment's numbers
    depend only on its config and seed, never on which worker ran it. On one accelerator keep ``jobs = 1``.
    ``quick`` always runs in workers (one for ``jobs = 1``), started with :func:`worker_xla_flags`.
    """
    found = discover(layout)
    names = list(names) if names is not None else select(found, only)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done: dict[str, dict] = {}

    def report_one(rec: dict) -> None:
        done[rec["name"]] = rec
        counts = ", ".join(f"{v} {k}" for k, v in _counts(rec["claims"]).items() if v)
        log(f"[{len(done)}/{len(names)}] {rec['name']}: {counts} ({rec['wall_s']:.0f} s)")
        for c in rec["claims"]:
            if c["status"] == FAIL:
                log(f"      FAIL {c['source']}: {c['claim']} — {c['measured']}")

    xla_flags = worker_xla_flags(size)
    if xla_flags is None and (jobs <= 1 or len(names) <= 1):
        for name in names:
            log(f"      {name} ({found[name][0]}, {size}) ...")
            prog = progress_factory(name) if progress_factory else None
            report_one(run_one(layout, name, found[name][1], size, out, prog))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        jobs = max(1, min(jobs, len(names)))
        log(f"      {len(names)} experiments on {jobs} worker process{'es' if jobs > 1 else ''}")
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init, initargs=(xla_flags,)) as pool:
            order = sorted(names, key=lambda n: -found[n][1].cost) if size == "quick" else names
            futs = {pool.submit(_worker, str(layout.root), n, size, str(out)): n for n in order}
            for fut in cf.as_completed(futs):
                try:
                    report_one(fut.result())
                except Exception as e:  # the worker itself died (run_one never raises)
                    n = futs[fut]
                    err = f"worker failed: {type(e).__name__}: {e}"
                    row = Claim(f"({found[n][1].paper})", f"experiment {n} ran", err[:300], "", FAIL)._asdict()
                    report_one({"name": n, "paper": found[n][1].paper, "size": size, "overrides": [],
                                "figures": [], "error": err, "wall_s": 0.0, "cpu_s": 0.0, "claims": [row]})  # fmt: skip
    records = [done[n] for n in names]
    summary = {
        "command": " ".join(["jaxmech reproduce", f"--{size}"] + [f"--only {p}" for p in only]),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - t0, 1),
        "jobs": jobs,
        "xla_flags": xla_flags if xla_flags is not None else os.environ.get("XLA_FLAGS", ""),
        "versions": _versions(),
        "totals": _counts([c for r in records for c in r["claims"]]),
        "experiments": records,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(summary))
    (out / "report.html").write_text(render_html(summary, out))
    return summary


def _counts(claims: Sequence[dict]) -> dict:
    return {s: sum(c["status"] == s for c in claims) for s in STATUSES}


def exit_code(summary: dict) -> int:
    """0 when no claim failed, 1 otherwise."""
    return 1 if summary["totals"][FAIL] else 0


_COLUMNS = ("source", "claim", "measured", "reference", "status")
_LEGEND = (
    "INFO rows are findings: where a paper's statement does not hold as written, the row says so with the numbers. "
    "MEASURE rows (timing, throughput, revenue, welfare) are reported quantities, not claims: their own section."
)


def _rows(summary: dict, paper: str, keep) -> list[tuple[str, dict]]:
    """``(experiment name, claim row)`` of one paper's experiments whose row passes ``keep``, in report order."""
    return [(r["name"], c) for r in summary["experiments"] if r["paper"] == paper for c in r["claims"] if keep(c)]


def _md_cell(x: str) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: dict) -> str:
    """report.md: header, one table per paper (one row per claim), then each experiment's figures."""
    t, v = summary["totals"], summary["versions"]
    lines = [
        "# jaxmech: reproducing the papers",
        "",
        f"`{summary['command']}` — {summary['date']}, {summary['wall_s']:.0f} s on {v['device']} ({v['backend']}), "
        f"jaxmech {v['jaxmech']}, jax {v['jax']}, Python {v['python']}.",
        "",
        f"**{t[PASS]} PASS, {t[FAIL]} FAIL, {t[INFO]} INFO**, {t.get(MEASURE, 0)} MEASURE. {_LEGEND}",
        "",
    ]
    for paper, title in PAPERS.items():
        rows = _rows(summary, paper, lambda c: c["status"] != MEASURE)
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            "| Source | Claim | Measured | Reference | Status | Experiment |",
            "|---|---|---|---|---|---|",
        ]
        for name, c in rows:
            cells = [_md_cell(c[k]) for k in _COLUMNS]
            cells[-1] = f"**{cells[-1]}**" if c["status"] != PASS else cells[-1]
            lines.append("| " + " | ".join(cells + [f"`{name}`"]) + " |")
        lines.append("")
    measured = [(paper, row) for paper in PAPERS for row in _rows(summary, paper, lambda c: c["status"] == MEASURE)]
    if measured:
        lines += [
            "## Measurements",
            "",
            "Reported quantities, not paper claims (timing, throughput, revenue, welfare); nothing here can fail.",
            "",
            "| Paper | Source | Quantity | Measured | Reference | Experiment |",
            "|---|---|---|---|---|---|",
        ]
        for paper, (name, c) in measured:
            cells = [_md_cell(c[k]) for k in _COLUMNS[:-1]]
            lines.append("| " + " | ".join([paper, *cells, f"`{name}`"]) + " |")
        lines.append("")
    lines += ["## Figures", ""]
    for r in summary["experiments"]:
        if r["figures"]:
            lines += [f"### {r['name']}", ""]
            lines += [f"![{_md_cell(f['caption'])}]({f['file']})  \n*{f['caption']}*\n" for f in r["figures"]]
    lines += ["## Experiments", ""]
    if any(r["size"] == "quick" for r in summary["experiments"]):
        lines += [
            "Every `--quick` run also sets " + ", ".join(f"`{o}`" for o in QUICK_BASE)
            + f" and runs with `XLA_FLAGS={summary.get('xla_flags', '')}` (compile-bound sizes: LLVM optimization off "
            "and classic CPU fusion emitters, except for search steps and interim loops).",
            "",
        ]  # fmt: skip
    lines += ["| Experiment | Paper | Wall (s) | Overrides | Results |", "|---|---|---|---|---|"]
    for r in summary["experiments"]:
        ov = ", ".join(f"`{o}`" for o in r["overrides"]) or "—"
        lines.append(f"| `{r['name']}` | {r['paper']} | {r['wall_s']:.1f} | {ov} | [{r['name']}/]({r['name']}/) |")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;line-height:1.4;padding:0 1em}
table{border-collapse:collapse;width:100%;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0} td.PASS{background:#e3f6e3;font-weight:bold} td.FAIL{background:#f9d6d6;font-weight:bold}
td.INFO{background:#fff4cc;font-weight:bold} code{font-size:0.95em}
figure{display:inline-block;margin:0.5em;max-width:46%;vertical-align:top} figure img{max-width:100%}
figcaption{font-size:0.85em;color:#555} .totals span{margin-right:1.5em;font-weight:bold}
"""


def _img(out: Path, rel: str) -> str:
    p = out / rel
    if not p.is_file():
        return "<em>(figure missing)</em>"
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">'


def render_html(summary: dict, out: Path) -> str:
    """report.html: the same content as report.md, self-contained (figures embedded as data URIs, no scripts)."""
    e = html.escape
    t, v = summary["totals"], summary["versions"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>jaxmech: reproducing the papers</title>",
        f"<style>{_CSS}</style></head><body><h1>jaxmech: reproducing the papers</h1>",
        f"<p><code>{e(summary['command'])}</code> — {e(summary['date'])}, {summary['wall_s']:.0f} s on "
        f"{e(v['device'])} ({e(v['backend'])}), jaxmech {e(v['jaxmech'])}, jax {e(v['jax'])}.</p>",
        f"<p class='totals'><span class='p'>{t[PASS]} PASS</span><span>{t[FAIL]} FAIL</span><span>{t[INFO]} INFO</span>"
        f"<span>{t.get(MEASURE, 0)} MEASURE</span></p><p>{e(_LEGEND)}</p>",
    ]
    for paper, title in PAPERS.items():
        rows = _rows(summary, paper, lambda c: c["status"] != MEASURE)
        if not rows:
            continue
        parts.append(f"<h2>{e(title)}</h2><table><tr>")
        parts.append(
            "".join(f"<th>{h}</th>" for h in ("Source", "Claim", "Measured", "Reference", "Status", "Experiment"))
        )
        parts.append("</tr>")
        for name, c in rows:
            cells = "".join(f"<td>{e(str(c[k]))}</td>" for k in _COLUMNS[:-1])
            parts.append(
                f"<tr>{cells}<td class='{e(c['status'])}'>{e(c['status'])}</td><td><code>{e(name)}</code></td></tr>"
            )
        parts.append("</table>")
    measured = [(paper, row) for paper in PAPERS for row in _rows(summary, paper, lambda c: c["status"] == MEASURE)]
    if measured:
        parts.append("<h2>Measurements</h2><p>Reported quantities, not paper claims (timing, throughput, revenue, "
                     "welfare); nothing here can fail.</p><table><tr>")  # fmt: skip
        parts.append("".join(f"<th>{h}</th>" for h in ("Paper", "Source", "Quantity", "Measured", "Reference", "Experiment")))
        parts.append("</tr>")
        for paper, (name, c) in measured:
            cells = "".join(f"<td>{e(str(c[k]))}</td>" for k in _COLUMNS[:-1])
            parts.append(f"<tr><td>{e(paper)}</td>{cells}<td><code>{e(name)}</code></td></tr>")
        parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    for r in summary["experiments"]:
        if r["figures"]:
            parts.append(f"<h3>{e(r['name'])}</h3>")
            for f in r["figures"]:
                parts.append(f"<figure>{_img(out, f['file'])}<figcaption>{e(f['caption'])}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def main_for(module_file: str, argv: Sequence[str] | None = None) -> int:
    """``python experiments/<paper>.py [--quick|--full] [--only P] [--out DIR]``: reproduce one module's experiments."""
    import argparse

    stem = Path(module_file).stem
    p = argparse.ArgumentParser(description=f"Run the experiments registered in experiments/{stem}.py")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true")
    g.add_argument("--full", action="store_true")
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--out", default=f"results/{stem}")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    a = p.parse_args(argv)
    layout = Layout(Path(module_file).resolve().parents[1])
    mine = [n for n, (mod, _) in discover(layout).items() if mod == f"{stem}.py"]
    names = select(dict.fromkeys(mine), a.only)
    size = "quick" if a.quick else "full" if a.full else "default"
    return exit_code(reproduce(layout, Path(a.out), size=size, names=names, only=a.only, jobs=a.jobs))
