import numpy as np
import pytest

from avaudit.audits.calibration import (
    T_MAX,
    T_MIN,
    calibrated_softmax,
    expected_calibration_error,
    fit_temperatures,
    layer_ece,
)
from avaudit.audits.decisions import softmax
from avaudit.vocab import LAYERS


def sample(n=6000, n_classes=6, temperature=1.0, seed=0):
    """Logits z (N, 5, C) and labels drawn from softmax(z[:, 0] / temperature): layer 0's truth."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, n_classes))
    p = softmax(z[:, None] / temperature)[:, 0]
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return np.repeat(z[:, None], len(LAYERS), axis=1), labels


def test_recovers_a_known_temperature():
    logits, labels = sample(temperature=2.5)
    t = fit_temperatures(logits, labels)
    assert t.shape == (5,)
    assert t == pytest.approx(np.full(5, 2.5), rel=0.1)


def test_over_confident_layer_is_cooled_and_its_ece_drops():
    logits, labels = sample()
    logits[:, 3] *= 5.0  # the visual layer is five times too sure
    t = fit_temperatures(logits, labels)
    assert t[3] == pytest.approx(5.0, rel=0.1)
    assert np.delete(t, 3) == pytest.approx(np.ones(4), rel=0.1)
    before = layer_ece(softmax(logits), labels)["visual"]
    after = layer_ece(calibrated_softmax(logits, t), labels)["visual"]
    assert before > 0.1 and after < before / 3


def test_calibrated_predictions_have_small_ece_and_miscalibrated_ones_do_not():
    logits, labels = sample(n=20000, seed=1)
    ece = layer_ece(softmax(logits), labels)
    assert set(ece) == set(LAYERS) and max(ece.values()) < 0.02
    assert expected_calibration_error(softmax(logits[:, 0] * 3.0), labels) > 0.1


def test_ece_by_hand():
    confidences = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    labels = np.array([0, 1, 1, 0])
    # Bin (0.8667, 0.9333]: accuracy 0.5 at confidence 0.9; bin (0.6667, 0.7333]: 1 at 0.7; bin of 0.5: 1 at 0.5.
    assert expected_calibration_error(confidences, labels) == pytest.approx((2 * 0.4 + 0.3 + 0.5) / 4)
    assert expected_calibration_error(confidences, labels, bins=1) == pytest.approx(0.0)  # accuracy 0.75 = mean confidence 0.75
    # Bins are (lo, hi]: a confidence of exactly 0.5 falls in the lower of two bins.
    edge = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert expected_calibration_error(edge, np.array([0, 1]), bins=2) == pytest.approx((0.5 + 0.9) / 2)
    assert np.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int)))
    with pytest.raises(ValueError):
        expected_calibration_error(confidences, labels, bins=0)


def test_degenerate_fits():
    assert np.array_equal(fit_temperatures(np.zeros((0, 5, 3)), np.zeros(0, int)), np.ones(5))
    assert np.array_equal(fit_temperatures(np.zeros((4, 5, 3)), np.array([0, 1, 2, 0])), np.ones(5))  # flat logits
    separable = np.zeros((3, 5, 3))
    separable[np.arange(3), :, np.arange(3)] = 1.0
    t = fit_temperatures(separable, np.arange(3))  # perfectly right: as sharp as allowed
    assert t == pytest.approx(np.full(5, T_MIN), rel=1e-3) and np.all(t >= T_MIN)
    wrong = fit_temperatures(separable, np.array([1, 2, 0]))  # always wrong: as flat as allowed
    assert wrong == pytest.approx(np.full(5, T_MAX), rel=1e-3)
    logits, labels = sample(n=500)
    assert np.array_equal(fit_temperatures(logits, labels), fit_temperatures(logits, labels))  # deterministic


def test_calibrated_softmax():
    logits = np.random.default_rng(0).normal(size=(4, 5, 3))
    assert np.allclose(calibrated_softmax(logits, np.ones(5)), softmax(logits))
    t = np.array([1.0, 2.0, 0.5, 1.0, 4.0])
    out = calibrated_softmax(logits, t)
    assert out.shape == (4, 5, 3) and np.allclose(out.sum(-1), 1.0)
    assert np.allclose(out[:, 1], softmax(logits / 2.0)[:, 1])
    with pytest.raises(ValueError):
        calibrated_softmax(logits, np.ones(4))
    with pytest.raises(ValueError):
        calibrated_softmax(logits, np.array([1.0, 0.0, 1.0, 1.0, 1.0]))
