"""Non-linear public-good values and a non-monotone provision rule for the CE Thm 7 / Def 10 rows
(configs/ce_thm7_provision.toml); written for ONE profile, jaxmech vmaps them.

``v_i(s) = s_i + s_i m_i / 2 + m_i^2 / 4`` with ``m_i`` the mean of the others' signals (strictly increasing in the
own signal, weakly in the others'), cost ``c = n / 2``. ``band`` provides iff ``c < V(s) < c + 0.3 n``
(``V = sum_i v_i``): NOT monotone in any own signal (CE Def 10), so by CE Thm 7's "only if" no payments make it ex
post IC. (``reproduce`` skips modules whose name starts with ``_``.)
"""

import jax.numpy as jnp


def values(s):
    n = s.shape[0]
    m = (jnp.sum(s) - s) / (n - 1)
    return s + 0.5 * s * m + 0.25 * m * m


def band(params, m):
    del params
    n = m.shape[0]
    total = jnp.sum(values(m))
    return ((total > 0.5 * n) & (total < 0.8 * n)).astype(m.dtype)
