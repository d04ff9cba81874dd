"""Named PRNG streams of a run: every salt that splits a run's root key, in one place.

A run draws everything from ``PRNGKey(seed)``; each use takes its own stream ``fold_in(root, salt)`` so that
adding a use never shifts another's numbers. The salts are the ones the experiment kinds have always used,
so results are unchanged; a new use picks an unused salt here.
"""

from __future__ import annotations

import jax

SEARCH = 1  # the optimizer's batches (search kinds)
GRID_PROFILES = 2  # common profiles of the grid search / comparison
FAMILY = 3  # a search family's own restoration sample
CERTIFY_OTHERS = 5  # sampled s_-i of the certificates
CERTIFY_REFINE = 6  # own-signal samples of the payment-difference widths
INTERIM_PAYMENTS = 7  # inner sample of interim-expected payments (mechanism kind "interim" and the interim kind)
INTERIM_CHECK = 11  # the interim (Bayesian) IC / IR check
THM4 = 13  # CE Thm 4's construction
EXPECTED_EXTERNALITY = 17  # the dAGV mechanism's inner sample
THM4_SCAN = 23  # CE Thm 4's scan of ex post constraints
THM2_PAYMENTS = 53  # the thm2 kind's profiles at which payments are recorded
PIVOTAL_STATS = 31  # price statistics profiles (B Sec. 4)
PIVOTAL_STEPS = 32  # the steps of the Assumption 2 check
TWO_OUTCOME_FAMILY = 41  # B Sec. 3's rule family
TWO_OUTCOME_STATS = 42  # its evaluation profiles
PRICE_TIMING = 77  # fresh profiles timing a price table
CONTRIBUTION_SURPLUS = 79  # profiles of CE Sec. 5.3's expected surplus
DESIGN = 43  # everything of the design kind (cold starts, batches, repair, evaluation, audit)
CONDITION5 = 51  # profiles of the B eq. (5) indifference check
TWO_PRICE_BASELINE = 52  # the search kind's best two-price rule (jm.design: cold starts, repair, polish)
TWO_OUTCOME_FIT = 100  # + k: the k-th target's search


def key_for(root: jax.Array, stream: int, index: int = 0) -> jax.Array:
    """The key of ``stream`` (one of this module's salts; ``index`` for numbered uses) under ``root``."""
    return jax.random.fold_in(root, stream + index)
