"""stats.py: intervals that cover as often as they claim, paired bootstrap, the diagnosis rule."""
import math

import numpy as np
import pytest

from course_utils import stats
from course_utils.train import History


def test_z_values():
    assert stats.z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert stats.z_value(0.99) == pytest.approx(2.575829, abs=1e-6)


def test_wilson_known_values():
    assert stats.wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert stats.wilson_interval(0, 20)[0] == 0 and stats.wilson_interval(20, 20)[1] == 1
    low, high = stats.wilson_interval(20, 20)
    assert 0.8 < low < 1, "all right still leaves room below 100%"
    assert stats.normal_interval(20, 20) == (1.0, 1.0), "the textbook interval collapses at p = 1"


@pytest.mark.parametrize("correct, n", [(8, 10), (140, 153), (1, 50)])
def test_wilson_endpoints_are_z_standard_errors_away(correct, n):
    """Wilson's definition: the measured accuracy is exactly z standard errors from each endpoint."""
    z, p = stats.z_value(0.95), correct / n
    for q in stats.wilson_interval(correct, n):
        assert abs(p - q) == pytest.approx(z * math.sqrt(q * (1 - q) / n), abs=1e-9)


def test_normal_interval_is_the_textbook_formula():
    low, high = stats.normal_interval(140, 153)
    p = 140 / 153
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(p * (1 - p) / 153), rel=1e-3)


def coverage(interval, p, n, trials=4000, seed=0):
    """Fraction of simulated validation sets of n images whose interval holds the true accuracy p."""
    correct = np.random.default_rng(seed).binomial(n, p, size=trials)
    hits = {k: (lambda lo_hi: lo_hi[0] <= p <= lo_hi[1])(interval(int(k), n)) for k in set(correct.tolist())}
    return float(np.mean([hits[k] for k in correct.tolist()]))


@pytest.mark.parametrize("p, n", [(0.5, 153), (0.9, 153), (0.95, 80), (0.8, 30)])
def test_wilson_covers_about_95_percent(p, n):
    assert 0.92 <= coverage(stats.wilson_interval, p, n) <= 0.98


def test_normal_interval_undercovers_near_100_percent():
    p, n = 0.97, 30
    assert coverage(stats.normal_interval, p, n) < 0.85 < coverage(stats.wilson_interval, p, n)


def test_bootstrap_of_identical_predictions_is_zero():
    right = np.random.default_rng(1).random(153) < 0.9
    result = stats.paired_bootstrap(right, right.copy(), samples=2000)
    assert result.difference == result.low == result.high == 0
    assert not result.samples.any()


def test_bootstrap_difference_and_interval():
    n = 153
    b = np.zeros(n, dtype=int)
    b[:130] = 1
    a = b.copy()
    a[130:140] = 1                     # A is right on 10 more images, wrong on none that B gets
    result = stats.paired_bootstrap(a, b, samples=4000, seed=3)
    assert result.difference == pytest.approx(10 / n)
    assert 0 < result.low < result.difference < result.high
    assert len(result.samples) == 4000
    same = stats.paired_bootstrap(a, b, samples=4000, seed=3)
    assert (same.low, same.high) == (result.low, result.high), "a seed gives the same resamples"
    assert stats.paired_bootstrap(b, a, samples=4000, seed=3).difference == pytest.approx(-10 / n)


def test_bootstrap_pairing_narrows_the_interval():
    """Two models that agree on most images: the paired interval is much narrower than the one
    that ignores the pairing (each accuracy's own uncertainty, added)."""
    rng = np.random.default_rng(0)
    b = (rng.random(153) < 0.85).astype(int)
    a = b.copy()
    a[np.flatnonzero(b == 0)[:4]] = 1
    paired = stats.paired_bootstrap(a, b, samples=4000)
    unpaired_half = 1.96 * math.sqrt(a.mean() * (1 - a.mean()) / 153 + b.mean() * (1 - b.mean()) / 153)
    assert (paired.high - paired.low) / 2 < 0.5 * unpaired_half


def test_bootstrap_rejects_unpaired_inputs():
    with pytest.raises(ValueError, match="same images"):
        stats.paired_bootstrap([1, 0, 1], [1, 0])


def history(train_acc, val_acc, train_loss, val_loss):
    h = History()
    for i, row in enumerate(zip(train_acc, val_acc, train_loss, val_loss), start=1):
        h.epochs.append(dict(zip(("train_acc", "val_acc", "train_loss", "val_loss"), row), epoch=i))
    return h


def test_curve_summary_averages_the_last_epochs():
    h = history([0.5, 0.8, 0.9, 1.0], [0.5, 0.7, 0.8, 0.9], [0.7, 0.4, 0.2, 0.1], [0.7, 0.2, 0.3, 0.4])
    s = stats.curve_summary(h, last=3)
    assert s["train_acc"] == pytest.approx(0.9) and s["val_acc"] == pytest.approx(0.8)
    assert s["gap"] == pytest.approx(0.1)
    assert s["rise"] == pytest.approx(0.3 / 0.2 - 1)
    assert stats.curve_summary(h, last=1)["gap"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no epochs"):
        stats.curve_summary(History())


def test_diagnose_each_row():
    underfit = history([0.5, 0.55, 0.6, 0.6], [0.5, 0.55, 0.58, 0.6], [0.69] * 4, [0.69] * 4)
    overfit_gap = history([0.8, 0.95, 1.0, 1.0], [0.7, 0.75, 0.75, 0.75], [0.4, 0.1, 0.01, 0.01], [0.5] * 4)
    overfit_rise = history([0.9, 1.0, 1.0, 1.0], [0.93, 0.93, 0.92, 0.93], [0.2, 0.01, 0.0, 0.0],
                           [0.2, 0.4, 0.5, 0.6])
    good = history([0.8, 0.9, 0.93, 0.94], [0.85, 0.9, 0.92, 0.93], [0.5, 0.3, 0.2, 0.2], [0.4, 0.25, 0.2, 0.21])
    assert stats.diagnose(underfit) == "underfitting"
    assert stats.diagnose(overfit_gap) == "overfitting"
    assert stats.diagnose(overfit_rise) == "overfitting"
    assert stats.diagnose(good) == "good fit"
    assert stats.diagnose(overfit_rise, max_rise=2.0) == "good fit", "thresholds are parameters"
    assert set(stats.DIAGNOSES) == {"underfitting", "overfitting", "good fit"}
