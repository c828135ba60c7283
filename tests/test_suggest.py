"""Which slice to paint next: the expected Dice of a result under its own probabilities."""

import numpy as np

from napari_universeg.suggest import expected_dice, next_slice


def test_expected_dice_of_certain_and_uncertain_results():
    labels = np.zeros((10, 10), np.uint8)
    labels[:5] = 1
    certain = np.where(labels > 0, 1.0, 0.0)
    assert expected_dice(labels, certain) == 1.0
    assert expected_dice(np.zeros((4, 4), np.uint8), np.zeros((4, 4))) == 1.0  # surely empty
    # half the predicted pixels at 0.6 and two background pixels at 0.4
    unsure = certain.copy()
    unsure[:5, :5] = 0.6
    unsure[9, :2] = 0.4
    assert np.isclose(expected_dice(labels, unsure), 2 * (25 + 15) / (50 + 40 + 0.8))
    # five unsure pixels: a small object is at risk, a large one hardly
    small, large = np.zeros((10, 10), np.uint8), labels
    small[0, :5] = 1
    p_large = np.where(large > 0, 1.0, 0.0)
    p_large[0, :5] = 0.6
    assert np.isclose(expected_dice(small, np.where(small > 0, 0.6, 0.0)), 2 * 3 / (5 + 3))
    assert expected_dice(large, p_large) > 0.95


def test_next_slice_is_the_least_expected_that_is_not_painted():
    scores = {(0,): 0.9, (1,): 0.5, (2,): 0.7}
    assert next_slice(scores, [(1,)]) == (2,)
    assert next_slice(scores, []) == (1,)
    assert next_slice(scores, scores) is None
