"""The statistics of a study: quantiles, a proportion's and a mean's 95% intervals, and the
Mann–Whitney U test; in numpy and the standard library (SciPy is not a dependency; the tests
check each function against SciPy or against its textbook formula).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)  # 1.95996...
# The exact U distribution is used, as SciPy's `method="auto"` does, when a sample has at most
# this many values and there are no ties; else the normal approximation with tie correction.
EXACT_MAX_SIZE = 8
# Above this many degrees of freedom the t quantile's Cornish–Fisher expansion is exact to ~1e-9
CORNISH_FISHER_DF = 200


def quantiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """numpy's (linear) quantiles of `values`; None for each when there are none."""
    if len(values) == 0:
        return [None] * len(qs)
    return [float(q) for q in np.quantile(np.asarray(values, dtype=float), qs)]


def wilson_interval(successes: int, trials: int, z: float = Z) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (Wilson 1927); None without trials."""
    if trials == 0:
        return None
    p, n = successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at p = 0 (1) the bound is exactly 0 (1); rounding would leave ~1e-17 beside it
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    return low, 1.0 if successes == trials else min(1.0, centre + half)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(mean, low, high): Student's t interval of the mean, mean ± t(0.975, n-1) s/√n.
    None without values; low and high are the mean itself for a single value (no spread known)."""
    n = len(values)
    if n == 0:
        return None
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if n == 1:
        return mean, mean, mean
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def t_quantile(p: float, df: int) -> float:
    """Student's t distribution's p-quantile (p > 0.5), `df` degrees of freedom."""
    z = NormalDist().inv_cdf(p)
    if df > CORNISH_FISHER_DF:  # Abramowitz & Stegun 26.7.5
        terms = (
            (z**3 + z) / 4,
            (5 * z**5 + 16 * z**3 + 3 * z) / 96,
            (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        )
        return z + sum(term / df ** (k + 1) for k, term in enumerate(terms))
    target = 2 * p - 1  # P(|T| <= t)
    low, high = 0.0, 1.0
    while _t_central(high, df) < target:
        high *= 2
    for _ in range(100):  # bisection to float precision
        middle = (low + high) / 2
        low, high = (middle, high) if _t_central(middle, df) < target else (low, middle)
    return (low + high) / 2


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for integer `df` (Abramowitz & Stegun 26.7.3 and 26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        total, term = 0.0, 1.0
        for k in range(1, (df - 1) // 2 + 1):  # 1 + 2/3 c² + 2·4/(3·5) c⁴ + ...
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        series = math.sqrt(c2) * s * total if df > 1 else 0.0
        return 2 / math.pi * (theta + series)
    total, term = 0.0, 1.0
    for k in range(1, df // 2 + 1):  # 1 + 1/2 c² + 1·3/(2·4) c⁴ + ...
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return s * total


def mann_whitney_p(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The two-sided Mann–Whitney U test's p-value of samples `x` and `y`, as SciPy's
    `mannwhitneyu(x, y)` gives it (exact for small samples without ties, else the normal
    approximation with tie and continuity corrections); None if a sample is empty."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return None
    ranks, tie_sizes = _average_ranks(np.concatenate([np.asarray(x, float), np.asarray(y, float)]))
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    ties = bool((tie_sizes > 1).any())
    if min(n1, n2) <= EXACT_MAX_SIZE and not ties:
        p = 2 * _exact_u_sf(round(u), n1, n2)
    else:
        n = n1 + n2
        tie_term = float((tie_sizes**3 - tie_sizes).sum())
        sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        z = (u - n1 * n2 / 2 - 0.5) / sd if sd > 0 else math.inf
        p = math.erfc(z / math.sqrt(2))  # 2 P(Z > z), exact far into the tail (1 - erf isn't)
    return min(1.0, max(0.0, p))


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks, ties sharing their average rank; and the size of each run of ties."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    average = starts + (sizes + 1) / 2  # the mean of ranks start+1 .. start+size
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, sizes)
    return ranks, sizes


def _exact_u_sf(u: int, n1: int, n2: int) -> float:
    """P(U >= u) under the null hypothesis, from U's exact distribution: the coefficients of the
    Gaussian binomial coefficient [n1+n2 choose n1] in q (exact integers)."""
    size = n1 * n2 + 1
    counts = [1] + [0] * (size - 1)
    for i in range(1, n1 + 1):
        # times (1 - q^(n2+i)), then divided by (1 - q^i): the division leaves no remainder
        shift = n2 + i
        counts = [c - (counts[k - shift] if k >= shift else 0) for k, c in enumerate(counts)]
        for k in range(i, size):
            counts[k] += counts[k - i]
    return sum(counts[u:]) / math.comb(n1 + n2, n1)
