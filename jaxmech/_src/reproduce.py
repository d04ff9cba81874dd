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

from typing import Callable, NamedTuple, Sequence

PASS, FAIL, INFO = "PASS", "FAIL", "INFO"


class Claim(NamedTuple):
    """One row of the report: a paper statement, what the run measured, and the verdict.

    Attributes:
      source: where the paper says it, e.g. ``"CE Thm 5"``, ``"B Example 1"``, ``"CE fn. 6"``.
      claim: the statement in one line.
      measured: the measured value with its SE or 95% interval, as text (``"0.2497 ± 0.0004"``).
      reference: what it is compared with and how that was obtained (``"(1+a)/6 = 0.25, closed form"``).
      status: ``PASS`` / ``FAIL`` (a checked claim) or ``INFO`` (a finding, e.g. where the text does not
        hold as written, stated with its numbers).
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
    """A finding that is reported, not checked (e.g. an erratum: what the text says vs what the numbers show)."""
    return Claim(source, claim, measured, reference, INFO)


class Experiment(NamedTuple):
    """A registered paper experiment: its claims function and the overrides of each size.

    Attributes:
      claims: ``metrics -> list[Claim]``.
      quick: ``--set``-style overrides for ``--quick`` (CI-sized: seconds on a 2-core CPU).
      full: overrides for ``--full`` (paper-grade sizes, meant for a GPU).
      paper: ``"CE"`` (Chung & Ely 2007) or ``"B"`` (Bikhchandani 2006), for grouping in the report.
    """

    claims: Callable[[dict], list[Claim]]
    quick: Sequence[str] = ()
    full: Sequence[str] = ()
    paper: str = "CE"


def pm(x: dict, digits: int = 4) -> str:
    """``mean ± se`` of a metrics dict with ``mean`` and ``se``."""
    return f"{x['mean']:.{digits}f} ± {x['se']:.{digits}f}"
