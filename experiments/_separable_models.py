"""Decision rules for CE Thm 2 beyond trade and provision (configs/ce_thm2_separable.toml); written for ONE report
profile, jaxmech vmaps them. (``reproduce`` skips modules whose name starts with ``_``.)

Single object, ``n`` bidders, ``v_i = s_i + a sum_{j != i} s_j`` with ``a < 1``: the highest signal has the highest
value, so the rules below are written in signals. ``h_i(q) = q_i``, the probability that ``i`` gets the object.

- ``reserve``: the highest bidder wins iff its signal exceeds ``RESERVE`` (the efficient rule among the eligible
  bidders): monotone (CE Def 8).
- ``softmax``: a RANDOMIZED rule, ``q_i = e^{B m_i} / (e^{B R0} + sum_j e^{B m_j})`` (the seller keeps the rest):
  ``dq_i/dm_i = B q_i (1 - q_i) > 0``, monotone.
- ``band``: the highest bidder wins unless its signal lies in ``(BAND_LO, BAND_HI)``: ``q_i`` drops from 1 to 0 at
  ``BAND_LO``, NOT monotone, so by CE Thm 2 no payments make it ex post IC.

Project of size ``q in {0, 1, 2}`` (``environment.kind = "project_size"``), ``h_i(q) = q``; ``T = sum_i m_i``:

- ``size_step``: ``q = 1[T > 0.6] + 1[T > 1.2]``: monotone, not efficient.
- ``size_nonmonotone``: ``q = 0`` below ``T = 0.4``, 2 on ``[0.4, 1.0)``, 1 on ``[1.0, 1.4)``, 2 above: ``q`` falls
  from 2 to 1 at ``T = 1.0``, NOT monotone.
"""

import jax
import jax.numpy as jnp

RESERVE = 0.3
SOFTMAX_B, SOFTMAX_R0 = 8.0, 0.5
BAND_LO, BAND_HI = 0.4, 0.7
STEP_CUTS = (0.6, 1.2)
NONMONOTONE_CUTS = (0.4, 1.0, 1.4)


def _highest(m):
    return jax.nn.one_hot(jnp.argmax(m), m.shape[0], dtype=m.dtype)


def reserve(params, m):
    del params
    return _highest(m) * (jnp.max(m) > RESERVE).astype(m.dtype)


def softmax(params, m):
    del params
    z = jnp.concatenate([jnp.full((1,), SOFTMAX_B * SOFTMAX_R0, m.dtype), SOFTMAX_B * m])
    return jax.nn.softmax(z)[1:]


def band(params, m):
    del params
    top = jnp.max(m)
    return _highest(m) * (~((top > BAND_LO) & (top < BAND_HI))).astype(m.dtype)


def size_step(params, m):
    del params
    t = jnp.sum(m)
    return (t > STEP_CUTS[0]).astype(m.dtype) + (t > STEP_CUTS[1]).astype(m.dtype)


def size_nonmonotone(params, m):
    del params
    t = jnp.sum(m)
    a, b, c = NONMONOTONE_CUTS
    return jnp.where(t < a, 0.0, jnp.where(t < b, 2.0, jnp.where(t < c, 1.0, 2.0))).astype(m.dtype)
