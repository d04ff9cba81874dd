"""Layer 1 — priors: distributions over signal profiles that can be sampled.

A *profile* is stored flat: one array of shape ``(D,)`` with ``D = sum(dims)``,
agent ``i`` owning the slice ``offsets[i] : offsets[i] + dims[i]``
(:func:`agent_slice`). A batch of profiles has shape ``(batch, D)``.

Every prior is a frozen value built by a factory that validates its
parameters in Python (``ValueError`` naming the parameter), and samples with an
explicit key: ``prior.sample(key, batch)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, ndtr, ndtri

from jaxmech._src.core.compile_options import FULL_OPTIMIZATION, supported

Array = jax.Array


# --------------------------------------------------------------------------
# profile layout


def offsets(dims: Sequence[int]) -> tuple[int, ...]:
    """Start index of each agent's signal in the flat profile."""
    out, acc = [], 0
    for d in dims:
        out.append(acc)
        acc += d
    return tuple(out)


def agent_slice(dims: Sequence[int], i: int) -> slice:
    """The slice of agent ``i``'s signal in a flat profile."""
    start = offsets(dims)[i]
    return slice(start, start + dims[i])


def replace_signal(profile: Array, dims: Sequence[int], i: int | Array, signal: Array) -> Array:
    """``(m_i, s_-i)``: the profile with agent ``i``'s signal replaced by ``signal``.

    ``i`` may be a traced integer where every agent has the same signal dimension, so one compiled
    program serves every agent (see :func:`agent_index`).
    """
    if not isinstance(i, (int, np.integer)):
        if not equal_dims(dims):
            raise ValueError(f"replace_signal: a traced agent index needs equal signal dimensions, got {dims}")
        d = dims[0]
        signal = jnp.broadcast_to(jnp.asarray(signal, profile.dtype), profile.shape[:-1] + (d,))
        return jax.lax.dynamic_update_slice_in_dim(profile, signal, i * d, axis=profile.ndim - 1)
    sl = agent_slice(dims, i)
    signal = jnp.broadcast_to(jnp.asarray(signal, profile.dtype), profile.shape[:-1] + (sl.stop - sl.start,))
    # a concatenation of static slices fuses into the consumer (a scatter would not)
    return jnp.concatenate([profile[..., : sl.start], signal, profile[..., sl.stop :]], axis=-1)


def equal_dims(dims: Sequence[int]) -> bool:
    """Whether every agent has the same signal dimension (then the agent index may be traced)."""
    return len(set(dims)) == 1


def agent_index(dims: Sequence[int], i: int) -> int | Array:
    """Agent ``i`` as a program argument: an int32 array where all signal dimensions are equal (one compile
    for every agent, :func:`replace_signal`), else the static ``int``."""
    return jnp.asarray(i, jnp.int32) if equal_dims(dims) else int(i)


def validate_dims(dims: Sequence[int], name: str = "dims") -> tuple[int, ...]:
    dims = tuple(dims)
    if len(dims) < 1:
        raise ValueError(f"{name}: need at least one agent, got {dims!r}")
    for i, d in enumerate(dims):
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
            raise ValueError(f"{name}[{i}]: signal dimension must be an integer >= 1, got {d!r}")
    return tuple(int(d) for d in dims)


# --------------------------------------------------------------------------
# marginals (one coordinate)


class Uniform(NamedTuple):
    """Uniform(lo, hi) on one coordinate."""

    lo: float = 0.0
    hi: float = 1.0

    def ppf(self, u: Array) -> Array:
        return self.lo + (self.hi - self.lo) * u

    def sample(self, key: Array, shape: tuple[int, ...], dtype) -> Array:
        return jax.random.uniform(key, shape, dtype, minval=self.lo, maxval=self.hi)

    @property
    def mean(self) -> float:
        return 0.5 * (self.lo + self.hi)


class Beta(NamedTuple):
    """Beta(a, b) scaled to the support [lo, hi]: ``lo + (hi - lo) * X``, X ~ Beta(a, b)."""

    a: float
    b: float
    lo: float = 0.0
    hi: float = 1.0

    def ppf(self, u: Array) -> Array:
        u = jnp.asarray(u)
        traced = isinstance(u, jax.core.Tracer)  # inside a program: inlined (options belong to the outer jit)
        quantile = beta_quantile if traced else jax.jit(beta_quantile, compiler_options=supported(FULL_OPTIMIZATION))
        return self.lo + (self.hi - self.lo) * quantile(self.a, self.b, u)

    def sample(self, key: Array, shape: tuple[int, ...], dtype) -> Array:
        x = jax.random.beta(key, self.a, self.b, shape, dtype)
        return self.lo + (self.hi - self.lo) * x

    @property
    def mean(self) -> float:
        return self.lo + (self.hi - self.lo) * self.a / (self.a + self.b)


Marginal = Union[Uniform, Beta]

# beta_quantile: the CDF tabulated on this many cells of [0, 1], then this many safeguarded Newton steps
_QUANTILE_CELLS = 256
_QUANTILE_STEPS = 5


def beta_quantile(a, b, u: Array) -> Array:
    """The Beta(a, b) quantile ``F^{-1}(u)`` on [0, 1], ``F`` the regularized incomplete beta function.

    ``a``, ``b`` may be traced (one compiled program for every Beta marginal). The cell of ``u`` in ``F`` tabulated
    on a 256-cell grid brackets the root; the start is the linear interpolation inside the cell, or in the first
    and last cells the power laws ``F(x) ~ x^a / (a B(a, b))`` and ``1 - F(x) ~ (1 - x)^b / (b B(a, b))`` (relative
    error O(1/256)); then 5 Newton steps ``x -= (F(x) - u) / f(x)``, each kept inside the shrinking bracket (the
    midpoint where a step leaves it). Quadratic convergence takes the O(1e-3) start to float64 resolution in 4
    steps: 6 evaluations of ``F`` per quantile where a plain bisection needs 60 (``F`` is a continued fraction in
    a loop, slow in programs compiled without LLVM optimization: ~10x faster there). The table and the steps share
    one evaluation of ``F`` in one loop (``F`` compiles slowly: one copy in the program, not two). Called
    eagerly, :meth:`Beta.ppf` jits it with full optimization even in a process that compiles fast by default
    (``reproduce --quick``): one compile per shape and dtype, whatever the parameters.
    """
    u = jnp.asarray(u)
    dt = u.dtype if jnp.issubdtype(u.dtype, jnp.floating) else jnp.result_type(float)
    u = u.astype(dt)
    a = jnp.asarray(a, dt)
    b = jnp.asarray(b, dt)
    k = _QUANTILE_CELLS
    grid = jnp.arange(k + 1, dtype=dt) / k
    log_beta = jax.scipy.special.gammaln(a) + jax.scipy.special.gammaln(b) - jax.scipy.special.gammaln(a + b)
    first = jnp.exp((jnp.log(a) + jnp.log(u) + log_beta) / a)  # the power laws at the ends of [0, 1]
    last = 1 - jnp.exp((jnp.log(b) + jnp.log1p(-u) + log_beta) / b)

    def start(table):
        """The bracketing cell ``F[j - 1] < u <= F[j]`` of the tabulated CDF and the start inside it."""
        j = jnp.clip(jnp.searchsorted(table, u, side="left"), 1, k)
        lo, hi = (j - 1).astype(dt) / k, j.astype(dt) / k
        f_lo, f_hi = table[j - 1], table[j]
        inside = lo + (hi - lo) * jnp.clip((u - f_lo) / jnp.where(f_hi > f_lo, f_hi - f_lo, 1), 0, 1)
        x = jnp.where(j == 1, first, jnp.where(j == k, last, inside))
        return jnp.clip(jnp.where(jnp.isfinite(x), x, inside), lo, hi), lo, hi

    def newton(x, fx, lo, hi):
        below = fx < u
        lo, hi = jnp.where(below, x, lo), jnp.where(below, hi, x)
        log_pdf = (a - 1) * jnp.log(x) + (b - 1) * jnp.log1p(-x) - log_beta
        nx = x - (fx - u) / jnp.exp(log_pdf)
        ok = jnp.isfinite(nx) & (nx >= lo) & (nx <= hi)
        return jnp.where(fx == u, x, jnp.where(ok, nx, 0.5 * (lo + hi))), lo, hi

    def body(it, state):
        x, lo, hi = state
        f = betainc(a, b, jnp.concatenate([grid, x.ravel()]))  # iteration 0: the table; then F(x)
        x0, lo0, hi0 = start(f[: k + 1])
        x1, lo1, hi1 = newton(x, f[k + 1 :].reshape(x.shape), lo, hi)
        return tuple(jnp.where(it == 0, p, q) for p, q in zip((x0, lo0, hi0), (x1, lo1, hi1), strict=True))

    zero = jnp.zeros_like(u)
    x, _, _ = jax.lax.fori_loop(0, _QUANTILE_STEPS + 1, body, (zero, zero, zero + 1))
    return x


def uniform(lo: float = 0.0, hi: float = 1.0) -> Uniform:
    """Uniform marginal; raises ``ValueError`` unless ``lo < hi`` (finite)."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"uniform: lo and hi must be finite, got lo={lo}, hi={hi}")
    if not lo < hi:
        raise ValueError(f"uniform: lo must be < hi, got lo={lo}, hi={hi}")
    return Uniform(lo, hi)


def beta(a: float, b: float, lo: float = 0.0, hi: float = 1.0) -> Beta:
    """Beta(a, b) marginal on [lo, hi]; raises ``ValueError`` for a <= 0, b <= 0, lo >= hi."""
    a, b = float(a), float(b)
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"beta: a must be > 0, got a={a}")
    if not (math.isfinite(b) and b > 0):
        raise ValueError(f"beta: b must be > 0, got b={b}")
    u = uniform(lo, hi)
    return Beta(a, b, u.lo, u.hi)


# --------------------------------------------------------------------------
# priors over profiles


class Prior(NamedTuple):
    """A distribution over flat profiles ``s`` of shape ``(D,)``.

    Attributes:
      dims: signal dimension ``d_i`` of each agent (static).
      marginals: one marginal per coordinate, ``len == D``.
      cholesky: ``None`` for independent coordinates, else the lower Cholesky
        factor ``(D, D)`` of the Gaussian-copula correlation matrix.
    """

    dims: tuple[int, ...]
    marginals: tuple[Marginal, ...]
    cholesky: np.ndarray | jax.Array | None = None

    @property
    def n_agents(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> int:
        return sum(self.dims)

    @property
    def lo(self) -> np.ndarray:
        """Lower end of the support, per coordinate, shape ``(D,)``."""
        return np.array([m.lo for m in self.marginals])

    @property
    def hi(self) -> np.ndarray:
        """Upper end of the support, per coordinate, shape ``(D,)``."""
        return np.array([m.hi for m in self.marginals])

    def sample(self, key: Array, batch: int, dtype=jnp.float32) -> Array:
        """Draw ``batch`` profiles, shape ``(batch, D)``."""
        if self.cholesky is None:
            # Coordinate j from fold_in(key, j). The uniform coordinates go through one batched threefry call
            # (the same numbers as one call each): on a CPU each call is a loop of its own in the compiled
            # program, so 2 D calls compile much slower than 2.
            keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(self.size))
            uni = [j for j, m in enumerate(self.marginals) if isinstance(m, Uniform)]
            cols = {}
            if uni:
                lo = jnp.asarray([self.marginals[j].lo for j in uni], dtype)
                hi = jnp.asarray([self.marginals[j].hi for j in uni], dtype)
                draw = jax.vmap(lambda k, a, b: jax.random.uniform(k, (batch,), dtype, a, b))
                cols = dict(zip(uni, draw(keys[jnp.asarray(uni)], lo, hi), strict=True))
            for j, m in enumerate(self.marginals):
                if j not in cols:
                    cols[j] = m.sample(keys[j], (batch,), dtype)
            return jnp.stack([cols[j] for j in range(self.size)], axis=-1)
        z = jax.random.normal(key, (batch, self.size), dtype)
        z = z @ jnp.asarray(self.cholesky, dtype).T
        # Keep u strictly inside (0, 1) so quantiles stay finite.
        tiny = jnp.finfo(dtype).eps
        u = jnp.clip(ndtr(z), tiny, 1 - tiny)
        cols = [m.ppf(u[:, j]) for j, m in enumerate(self.marginals)]
        return jnp.stack(cols, axis=-1).astype(dtype)

    def latin_hypercube(self, key: Array, n: int, dtype=jnp.float32) -> Array:
        """``n`` profiles, each coordinate at the marginal quantiles of the midpoints ``(k + 1/2) / n``.

        The coordinates are paired by independent random permutations (a Latin
        hypercube). Independent priors only. Expectations of a function of one
        coordinate are midpoint-rule exact to ``O(1/n)`` (``O(1/n^2)`` if smooth),
        far below the ``O(1/sqrt(n))`` of plain draws: used for the inner
        expectations of interim (Bayesian) quantities.
        """
        if self.cholesky is not None:
            raise ValueError("latin_hypercube: needs an independent prior")
        mid = (jnp.arange(n, dtype=dtype) + 0.5) / n
        cols = [m.ppf(jax.random.permutation(jax.random.fold_in(key, j), mid)) for j, m in enumerate(self.marginals)]
        return jnp.stack(cols, axis=-1).astype(dtype)


# PriorArrays.kind of a marginal
UNIFORM_KIND, BETA_KIND = 0, 1


class PriorArrays(NamedTuple):
    """A prior's numbers as arrays (:func:`prior_arrays`): the argument of one compiled program that samples every
    prior over the same signal dimensions, uniform or Beta marginals, independent or a Gaussian copula
    (:func:`sample_arrays`; which marginal and whether correlated are numbers here, not program structure)."""

    kind: Array  # shape=(D,) UNIFORM_KIND or BETA_KIND
    a: Array  # shape=(D,) Beta parameters (1 for a uniform marginal)
    b: Array  # shape=(D,)
    lo: Array  # shape=(D,) support
    hi: Array  # shape=(D,)
    cholesky: Array  # shape=(D, D) the copula's Cholesky factor (identity if independent)
    correlated: Array  # shape=() nonzero: a Gaussian copula


def prior_arrays(prior: Prior, dtype=jnp.float32) -> PriorArrays:
    """``prior``'s numbers as :class:`PriorArrays` in ``dtype`` (the kind int32, ``correlated`` bool)."""
    ms = prior.marginals
    beta_ = [isinstance(m, Beta) for m in ms]
    chol = np.eye(prior.size) if prior.cholesky is None else prior.cholesky
    return PriorArrays(
        jnp.asarray([BETA_KIND if x else UNIFORM_KIND for x in beta_], jnp.int32),
        jnp.asarray([m.a if x else 1.0 for m, x in zip(ms, beta_, strict=True)], dtype),
        jnp.asarray([m.b if x else 1.0 for m, x in zip(ms, beta_, strict=True)], dtype),
        jnp.asarray([m.lo for m in ms], dtype),
        jnp.asarray([m.hi for m in ms], dtype),
        jnp.asarray(chol, dtype),
        jnp.asarray(prior.cholesky is not None),
    )


def marginal_quantile(m, j: int, u: Array) -> Array:
    """Coordinate ``j``'s quantile ``F_j^{-1}(u)`` from arrays ``m`` with fields ``kind, a, b, lo, hi`` (e.g.
    :class:`PriorArrays`): ``lo + (hi - lo) u`` or the scaled :func:`beta_quantile`, the kind a traced number."""
    x = jax.lax.cond(m.kind[j] == BETA_KIND, lambda: beta_quantile(m.a[j], m.b[j], u).astype(u.dtype), lambda: u)
    return m.lo[j] + (m.hi[j] - m.lo[j]) * x


def marginal_cdf_of(m, j: int, x: Array) -> Array:
    """Coordinate ``j``'s CDF ``F_j(x)`` from arrays ``m`` as in :func:`marginal_quantile`."""
    z = jnp.clip((x - m.lo[j]) / (m.hi[j] - m.lo[j]), 0.0, 1.0)
    return jax.lax.cond(m.kind[j] == BETA_KIND, lambda: betainc(m.a[j], m.b[j], z).astype(z.dtype), lambda: z)


def sample_arrays(pa: PriorArrays, dims: Sequence[int], key: Array, batch: int, dtype=jnp.float32) -> Array:
    """``batch`` profiles ``(batch, D)`` from the prior whose numbers are ``pa`` (traceable in them).

    The numbers :meth:`Prior.sample` draws for uniform marginals and for Gaussian copulas (the same keys and
    operations); an independent Beta marginal by its quantile of a uniform draw, where :meth:`Prior.sample` uses
    ``jax.random.beta`` (the same law, other numbers).
    """
    size = sum(dims)

    def copula():
        z = jax.random.normal(key, (batch, size), dtype) @ pa.cholesky.astype(dtype).T
        tiny = jnp.finfo(dtype).eps
        return jnp.clip(ndtr(z), tiny, 1 - tiny)

    def independent():
        keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(size))
        return jax.vmap(lambda k: jax.random.uniform(k, (batch,), dtype))(keys).T

    u = jax.lax.cond(jnp.asarray(pa.correlated).astype(bool), copula, independent)
    return jnp.stack([marginal_quantile(pa, j, u[:, j]).astype(dtype) for j in range(size)], axis=-1)


class TracedPrior(NamedTuple):
    """A prior given by its :class:`PriorArrays` (possibly traced) and its static ``dims``: what an audit kernel
    needs of a :class:`Prior` (``dims``, ``sample``), so that one kernel serves priors of every structure."""

    dims: tuple[int, ...]
    arrays: PriorArrays

    @property
    def n_agents(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> int:
        return sum(self.dims)

    def sample(self, key: Array, batch: int, dtype=jnp.float32) -> Array:
        return sample_arrays(self.arrays, self.dims, key, batch, dtype)


def _expand_marginals(dims: tuple[int, ...], marginals) -> tuple[Marginal, ...]:
    size = sum(dims)
    if isinstance(marginals, (Uniform, Beta)):
        return (marginals,) * size
    marginals = tuple(marginals)
    if len(marginals) != size:
        raise ValueError(
            f"marginals: need one marginal per signal coordinate ({size} for dims={list(dims)}), got {len(marginals)}"
        )
    for j, m in enumerate(marginals):
        if not isinstance(m, (Uniform, Beta)):
            raise ValueError(f"marginals[{j}]: expected a Uniform or Beta marginal, got {m!r}")
    return marginals


def copula_density(prior: Prior, dtype=jnp.float32):
    """``u -> c(u)``: the prior's joint density in quantile space (``u_j = F_j(s_j)``, shape ``(D,)``), or None for
    an independent prior (``c = 1``). Gaussian copula with correlation ``R``:
    ``c(u) = |R|^(-1/2) exp(-z'(R^-1 - I) z / 2)``, ``z = Phi^-1(u)``, so ``E[f(s)] = int f(F^-1(u)) c(u) du`` over the
    unit cube. ``u`` is clipped to ``[eps, 1 - eps]`` (the density is unbounded at some corners, never infinite
    inside)."""
    if prior.cholesky is None:
        return None
    chol = np.asarray(prior.cholesky, np.float64)
    corr = chol @ chol.T
    d = np.sqrt(np.diag(corr))
    corr = corr / d[:, None] / d[None, :]
    a = np.linalg.inv(corr) - np.eye(len(corr))
    scale = 1.0 / math.sqrt(float(np.linalg.det(corr)))
    tiny = float(jnp.finfo(dtype).eps)

    def density(u):
        z = ndtri(jnp.clip(u, tiny, 1 - tiny))
        return scale * jnp.exp(-0.5 * z @ jnp.asarray(a, z.dtype) @ z)

    return density


def independent(dims: Sequence[int], marginals: Marginal | Sequence[Marginal] = Uniform()) -> Prior:
    """Independent coordinates, each with its own marginal (one marginal = the same for all)."""
    dims = validate_dims(dims)
    return Prior(dims, _expand_marginals(dims, marginals), None)


def gaussian_copula(dims: Sequence[int], marginals: Marginal | Sequence[Marginal], correlation) -> Prior:
    """Gaussian copula with correlation matrix ``correlation`` (D x D) over the given marginals.

    ``s_j = F_j^{-1}(Phi(z_j))`` with ``z ~ N(0, correlation)``.
    Raises ``ValueError`` for a matrix of the wrong size, not symmetric, without
    unit diagonal, or not positive definite (:func:`correlation_problem`; e.g.
    ``rho = 1``, identical signals). A traced matrix (a family over its entries) is
    not checked here: each member is checked where it is built with its concrete matrix.
    """
    dims = validate_dims(dims)
    marginals = _expand_marginals(dims, marginals)
    size = sum(dims)
    if isinstance(correlation, jax.core.Tracer):  # a family over its entries (engine.audit_family): each member
        if correlation.shape != (size, size):  # was built, and so checked, with its concrete matrix
            raise ValueError(f"correlation: expected a {size}x{size} matrix for dims={list(dims)}")
        jitter = 1e-12 * jnp.eye(size, dtype=correlation.dtype)
        return Prior(dims, marginals, jnp.linalg.cholesky(correlation + jitter))
    corr = np.asarray(correlation, dtype=np.float64)
    if corr.shape != (size, size):
        raise ValueError(f"correlation: expected a {size}x{size} matrix for dims={list(dims)}, got shape {corr.shape}")
    problem = correlation_problem(corr)
    if problem is not None:
        raise ValueError(f"correlation: {problem}")
    # Positive definite (checked above); the tiny jitter stays so every valid prior samples the numbers it always did.
    chol = np.linalg.cholesky(corr + 1e-12 * np.eye(size))
    return Prior(dims, marginals, chol)


# Eigenvalue tolerance of a correlation matrix: smallest eigenvalue <= _SINGULAR: singular; < -_SINGULAR: indefinite.
_SINGULAR = 1e-10


def rho_problem(rho, size: int | None = None, name: str = "rho") -> str | None:
    """Why the equicorrelation ``rho`` over ``size`` signals (``None``: any number >= 2) is no Gaussian copula, or
    ``None`` if it is one: it needs ``-1/(D-1) < rho < 1``. At ``rho = 1`` the signals are identical (ties, whose
    probabilities an audit would silently miscount); at ``-1/(D-1)`` the matrix is singular, below it indefinite.
    Plain Python and NumPy (config validation calls it before anything is traced)."""
    r = float(rho)
    need = "the Gaussian copula needs -1/(D-1) < rho < 1"
    if size is not None:
        if size < 2:
            return None  # a single signal: no off-diagonal entry
        need += f" (D = {size}: {-1 / (size - 1):.4g} < rho < 1)"
    head = f"{name} = {r:g}"
    if not math.isfinite(r):
        return f"{head} is not a number; {need}"
    if r > 1 + _SINGULAR:
        return f"{head} makes the correlation matrix not positive semi-definite (a correlation is at most 1); {need}"
    if r >= 1 - _SINGULAR:
        return f"{head} makes the signals identical; {need}"
    if r < -1 - _SINGULAR:
        return f"{head} makes the correlation matrix not positive semi-definite (a correlation is at least -1); {need}"
    if size is None:
        if r <= -1 + _SINGULAR:
            return (
                f"{head} makes the correlation matrix singular for D = 2 signals and not positive semi-definite for "
                f"more; {need}"
            )
        return None
    smallest = 1 + (size - 1) * r  # the eigenvalue along (1, ..., 1); the others are 1 - rho
    if smallest < -_SINGULAR:
        return (
            f"{head} makes the correlation matrix not positive semi-definite (smallest eigenvalue 1 + (D-1) rho = "
            f"{smallest:.3g}); {need}"
        )
    if smallest <= _SINGULAR:
        why = (
            "one signal is a decreasing function of the other"
            if size == 2
            else f"the normal scores of the {size} signals sum to zero"
        )
        return f"{head} makes the correlation matrix singular ({why}); {need}"
    return None


def correlation_problem(correlation) -> str | None:
    """Why ``correlation`` is no Gaussian-copula correlation matrix, or ``None`` if it is one: square, finite,
    symmetric, unit diagonal and positive definite (Cholesky). A singular matrix makes some signals exact
    functions of others (``rho = 1``: identical signals, ties). An equicorrelation matrix is explained by its
    ``rho`` (:func:`rho_problem`). Plain NumPy: never a traced value."""
    try:
        corr = np.asarray(correlation, dtype=np.float64)
    except (TypeError, ValueError):
        return f"expected a square matrix of numbers, got {correlation!r}"
    if corr.ndim != 2 or corr.shape[0] != corr.shape[1]:
        return f"expected a square matrix, got shape {corr.shape}"
    size = corr.shape[0]
    if not np.all(np.isfinite(corr)):
        return "entries must be finite"
    if not np.allclose(corr, corr.T, atol=1e-10):
        return "matrix must be symmetric"
    if not np.allclose(np.diag(corr), 1.0, atol=1e-10):
        return f"diagonal must be all ones, got {np.diag(corr).tolist()}"
    if size >= 2:
        off = corr[~np.eye(size, dtype=bool)]
        if np.ptp(off) <= 1e-12:  # equicorrelation
            problem = rho_problem(off[0], size, name="rho (every off-diagonal entry)")
            if problem is not None:
                return problem
    smallest = float(np.linalg.eigvalsh(corr).min())
    need = "the Gaussian copula needs a positive definite correlation matrix"
    if smallest < -_SINGULAR:
        return f"matrix is not positive semi-definite (smallest eigenvalue {smallest:.3g}); {need}"
    try:
        np.linalg.cholesky(corr)
        factored = True
    except np.linalg.LinAlgError:
        factored = False
    if not factored or smallest <= _SINGULAR:
        return (
            f"matrix is singular (smallest eigenvalue {smallest:.3g}): some signals are exact functions of others; "
            f"{need}"
        )
    return None


def equicorrelation(size: int, rho: float) -> np.ndarray:
    """The ``size x size`` matrix with unit diagonal and ``rho`` off the diagonal."""
    return (1 - rho) * np.eye(size) + rho * np.ones((size, size))
