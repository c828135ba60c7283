"""Which slice to paint next: the expected fraction of wrong pixels of a result under its own
probabilities."""

import numpy as np

from napari_universeg.suggest import expected_errors, next_slice


def test_expected_errors_of_certain_and_uncertain_results():
    labels = np.zeros((10, 10), np.uint8)
    labels[:5] = 1
    certain = np.where(labels > 0, 1.0, 0.0)
    assert expected_errors(labels, certain) == 0.0
    assert expected_errors(np.zeros((4, 4), np.uint8), np.zeros((4, 4))) == 0.0  # surely empty
    assert expected_errors(labels, np.full((10, 10), 0.5)) == 0.5  # a coin toss everywhere
    # 25 found pixels at 0.6 (0.4 wrong each) and two background pixels at 0.4 (0.4 wrong each)
    unsure = certain.copy()
    unsure[:5, :5] = 0.6
    unsure[9, :2] = 0.4
    assert np.isclose(expected_errors(labels, unsure), (25 * 0.4 + 2 * 0.4) / 100)
    # labels 2 (a second class) count as found, with the probability of that class
    assert np.isclose(expected_errors(labels * 2, unsure), (25 * 0.4 + 2 * 0.4) / 100)


def test_a_few_small_unsure_objects_count_less_than_many_unsure_pixels():
    # The reason for the rule: painting the second slice corrects ten times the pixels.
    small = np.zeros((10, 10), np.uint8)
    small[0, :5] = 1
    wide = np.zeros((10, 10), np.uint8)
    wide[:5] = 1
    scores = {
        "small": expected_errors(small, np.where(small > 0, 0.6, 0.0)),
        "wide": expected_errors(wide, np.where(wide > 0, 0.6, 0.0)),
    }
    assert np.isclose(scores["small"], 5 * 0.4 / 100) and np.isclose(scores["wide"], 50 * 0.4 / 100)
    assert next_slice(scores, []) == "wide"


def test_next_slice_is_the_most_unsure_that_is_not_painted():
    scores = {(0,): 0.01, (1,): 0.2, (2,): 0.1}
    assert next_slice(scores, [(1,)]) == (2,)
    assert next_slice(scores, []) == (1,)
    assert next_slice(scores, scores) is None


def _unrelated(n=12, size=96, seed=0):
    """n independent smooth random images: a series, not a stack."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    return [gaussian_filter(rng.normal(size=(size, size)), 4) for _ in range(n)]


def test_likeness_by_distance_is_zero_for_unrelated_images_and_falls_along_a_stack():
    from napari_universeg.sample_data import synthetic_stack
    from napari_universeg.suggest import likeness_by_distance, thumbnail

    r = likeness_by_distance([thumbnail(im) for im in _unrelated()])
    assert r[0] == 1.0 and np.all(r[1:] == 0.0)
    image, _ = synthetic_stack(n_slices=16, size=96)
    r = likeness_by_distance([thumbnail(im) for im in image])
    assert r[0] == 1.0 and 0.0 < r[2] < r[1] < 1.0  # neighbours share most, then less and less
    assert r[-1] == 0.0
    assert thumbnail(np.ones((5, 7))).shape == (64, 64) and not thumbnail(np.ones((5, 7))).any()  # flat: zeros
    assert thumbnail(np.ones((40, 40, 3)) * np.arange(40)[:, None, None]).std() > 0.99  # RGB averaged


def test_next_slice_counts_the_neighbours_of_a_painted_slice_less():
    scores = {0: 0.1, 1: 0.3, 3: 0.28, 6: 0.2}
    likeness = np.array([1.0, 0.5, 0.2, 0.0, 0.0, 0.0, 0.0])
    assert next_slice(scores, [2]) == 1  # without the stack: the most expected errors
    # 1 and 3 are next to 2: 0.3 x 0.5 and 0.28 x 0.5 < 0.2 (6, four away); 0 is two away: 0.1 x 0.8
    assert next_slice(scores, [2], range(7), likeness) == 6
    assert next_slice(scores, [2, 6], range(7), likeness) == 1  # ties go to the first
    assert next_slice(scores, [2], range(7), np.array([1.0] + [0.0] * 6)) == 1  # a series: no discount
