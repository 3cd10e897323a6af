"""Customers simulated from the customer-value models, for tests/graph/test_customer_value.py and for
bench/clv_reference.py, which prints PyMC-Marketing's fits of the same customers (numpy only, so that script runs
in a virtual environment holding PyMC-Marketing and nothing of the project)."""

import numpy as np

# Customers whose predictions are compared (rows of the simulated data; for buyers, rows among the buyers).
REFERENCE_CUSTOMERS = [0, 1, 2, 3, 10, 100, 1000, 5000]


def simulate(n: int, seed: int, r=0.25, alpha=4.0, a=0.8, b=2.5, p=6.0, q=4.0, v=15.0):
    """MBG/NBD customers observed for 30 to 365 days after their first purchase (recency in whole days): after
    every purchase, the first one included, a customer leaves with their own probability. Gamma-Gamma mean spends
    of the repeat purchases."""
    rng = np.random.default_rng(seed)
    rate, dropout = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    t = rng.integers(30, 366, n).astype(float)
    x, t_x, clock = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = rng.random(n) >= dropout  # gone right after the first purchase, or not
    while alive.any():
        idx = np.flatnonzero(alive)
        clock[idx] += rng.exponential(1 / rate[idx])
        late = clock[idx] > t[idx]
        alive[idx[late]] = False
        bought = idx[~late]
        x[bought] += 1
        t_x[bought] = clock[bought]
        alive[bought[rng.random(len(bought)) < dropout[bought]]] = False
    nu = rng.gamma(q, 1 / v, n)
    repeats = np.maximum(x, 1)
    m = np.where(x > 0, rng.gamma(p * repeats, 1 / (nu * repeats)), np.nan)
    return x, np.floor(t_x), t, m
