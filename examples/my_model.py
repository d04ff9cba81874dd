"""Your own value model and decision rule, audited without editing jaxmech.

Used by configs/custom_model.toml:

    [environment]
    kind = "bilateral_trade"
    values = "examples/my_model.py:values"
    [mechanism]
    kind = "pivot"
    decide = "examples/my_model.py:decide"

Both functions are written for ONE profile (JAX arrays); jaxmech vmaps them.
"""

import jax.numpy as jnp


def values(s):
    """Nonlinear interdependent values: ``v_beta = s_b + 0.5 s_s^2``, ``v_sigma = s_s + 0.3 s_b``."""
    s_b, s_s = s[0], s[1]
    return jnp.stack([s_b + 0.5 * s_s**2, s_s + 0.3 * s_b])


def decide(params, m):
    """A monotone cutoff rule: trade iff ``m_beta > 0.2 + 0.6 m_sigma`` (not efficient, but ex post IC)."""
    del params
    return (m[0] > 0.2 + 0.6 * m[1]).astype(m.dtype)
