"""The experiment kinds (``[experiment] kind = ...``): one module per kind, each defining ``KIND``, registered here.

Adding a kind: a new module in this folder with its ``KIND = Kind(...)`` (:class:`~.common.Kind`: name, doc,
options, run, summary, checkpoints) and one line in :data:`KINDS`. ``runs.run``, ``runs.summary``, ``jaxmech list``
and ``--resume`` read :data:`KINDS`; the config accepts exactly its names (checked by :func:`get`, not by
:mod:`config`, which the kinds import).
"""

from __future__ import annotations

from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds import (
    audit,
    certify,
    compare_deficits,
    condition5,
    contributions,
    cremer_mclean,
    design,
    double_auction,
    externality,
    interim,
    interim_audit,
    pivotal,
    search,
    sweep,
    thm2,
    thm4,
    two_outcome,
)
from jaxmech._src.app.kinds.common import Kind

__all__ = ["KINDS", "Kind", "get"]

# name -> Kind, in the order `jaxmech list` prints them
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        audit.KIND,
        sweep.KIND,
        compare_deficits.KIND,
        interim.KIND,
        interim_audit.KIND,
        thm2.KIND,
        thm4.KIND,
        cremer_mclean.KIND,
        double_auction.KIND,
        contributions.KIND,
        certify.KIND,
        pivotal.KIND,
        two_outcome.KIND,
        condition5.KIND,
        externality.KIND,
        search.KIND,
        design.KIND,
    )
}


def get(name: str) -> Kind:
    """The registered kind ``name``; a :class:`~jaxmech._src.app.config.ConfigError` naming ``experiment.kind``
    (with the valid names and the closest one) otherwise."""
    kind = KINDS.get(name)
    if kind is None:
        raise cfg.ConfigError(cfg.not_one_of("experiment.kind", name, tuple(KINDS)))
    return kind
