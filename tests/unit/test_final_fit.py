"""The final k-means fit (assets/model/selection.py): mini-batch k-means draws its batches from a uniform pool of
at most MINIBATCH_POOL_ROWS fitted rows, and every customer is still assigned and counted in the inertia."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from assets.model import selection
from assets.model.preparation import prepare


def three_groups(rows_per_group: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 5.0], [0.0, 10.0, -5.0]])
    truth = np.repeat(np.arange(3), rows_per_group)
    return centres[truth] + rng.normal(scale=0.5, size=(len(truth), 3)), truth


@pytest.fixture
def fitted_rows(monkeypatch) -> list[int]:
    """How many rows each k-means estimator was fitted on."""
    seen: list[int] = []
    make = selection.make_estimator

    def recording(*args, **kwargs):
        estimator = make(*args, **kwargs)
        fit = estimator.fit

        def fit_and_count(rows, *more, **options):
            seen.append(len(rows))
            return fit(rows, *more, **options)

        estimator.fit = fit_and_count
        return estimator

    monkeypatch.setattr(selection, "make_estimator", recording)
    return seen


def test_a_minibatch_fit_past_the_pool_size_draws_from_a_pool_and_assigns_everyone(monkeypatch, fitted_rows):
    features, truth = three_groups(1_000)
    fit_mask = np.ones(len(features), dtype=bool)
    fit_mask[::10] = False  # outliers: assigned, not fitted on
    monkeypatch.setattr(selection, "MINIBATCH_POOL_ROWS", 500)
    model, _ = selection.fit_final(prepare(features, fit_mask), fit_mask, 3, "minibatch", seed=0,
                                   previous_centers_unscaled=None)
    assert fitted_rows == [500]
    assert len(model.labels) == len(features)
    # Seeded: the same pool and the same model again.
    again, _ = selection.fit_final(prepare(features, fit_mask), fit_mask, 3, "minibatch", seed=0,
                                   previous_centers_unscaled=None)
    assert np.array_equal(again.labels, model.labels) and again.inertia == model.inertia
    assert adjusted_rand_score(truth, model.labels) == 1.0
    # The inertia is every fitted customer's, not the pool's.
    assert model.inertia == pytest.approx(float(np.sum(model.distances[fit_mask] ** 2)))


def test_a_fit_within_the_pool_size_uses_every_fitted_row(fitted_rows):
    features, truth = three_groups(300)
    fit_mask = np.ones(len(features), dtype=bool)
    model, _ = selection.fit_final(prepare(features, fit_mask), fit_mask, 3, "minibatch", seed=0,
                                   previous_centers_unscaled=None)
    assert fitted_rows == [900]
    assert adjusted_rand_score(truth, model.labels) == 1.0
