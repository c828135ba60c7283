"""Test-time adaptation: a fine-tuned copy, never the shipped model, used through PredictOptions."""

import numpy as np
import pytest
import torch

from napari_universeg import PredictOptions, Segmenter, SupportSet, UniverSeg
from napari_universeg.adapt import adapt_model
from napari_universeg.sample_data import synthetic_stack


@pytest.fixture()
def segmenter():
    torch.manual_seed(0)
    return Segmenter(UniverSeg((8, 8, 8, 8), (8, 8, 8)), device="cpu", precision="fp32", size=64)


def _support(n=3):
    image, labels = synthetic_stack(n_slices=n + 1, size=96)
    support = SupportSet()
    for z in range(n):
        support.add(image[z], labels[z], source=f"slice {z}")
    return support, image[n]


def test_adaptation_changes_a_copy_and_lowers_the_episode_loss(segmenter):
    support, _ = _support()
    before = {k: v.clone() for k, v in segmenter.model.state_dict().items()}
    pairs = []
    for ex in support.enabled():
        image = segmenter._image_tensor(ex.image.astype(np.float32), None)[0:1]
        mask = segmenter._mask_tensor(ex.mask, None)[0:1].clamp(0, 1)
        pairs.append((image, mask))
    tuned = adapt_model(segmenter.model, pairs, steps=30, lr=1e-3)
    for k, v in segmenter.model.state_dict().items():
        assert torch.equal(v, before[k]), f"the original model changed: {k}"
    assert any(not torch.equal(v, tuned.state_dict()[k]) for k, v in before.items())

    def episode_loss(model):
        from napari_universeg.adapt import _loss

        q, qm = pairs[0]
        si = torch.stack([p[0] for p in pairs[1:]], 1)
        sm = torch.stack([p[1] for p in pairs[1:]], 1)
        with torch.no_grad():
            return float(_loss(model(q, si, sm), qm))

    assert episode_loss(tuned) < episode_loss(segmenter.model)


def test_adaptation_can_be_cancelled_and_needs_two_examples(segmenter):
    pair = (torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))
    assert adapt_model(segmenter.model, [pair, pair], cancel=lambda: True) is None
    with pytest.raises(ValueError, match="two examples"):
        adapt_model(segmenter.model, [pair])


@pytest.mark.parametrize("mode,scale", [("resize", None), ("tiled", 1.0)])
def test_predict_with_adapt_uses_a_cached_adapted_copy(segmenter, mode, scale):
    support, query = _support(n=1)  # one example: its halves make the episodes
    options = PredictOptions(mode=mode, scale=scale, adapt=True)
    first = segmenter.predict(support, [query], options)[0]
    assert first.labels.shape == query.shape
    assert len(segmenter._adapted) == 1
    adapted = next(iter(segmenter._adapted.values()))
    segmenter.predict(support, [query], options)
    assert next(iter(segmenter._adapted.values())) is adapted  # not fine-tuned again
    assert adapted is not segmenter.model


def test_adapt_refuses_several_classes(segmenter):
    support, query = _support()
    support[0].mask[:4, :4] = 2
    with pytest.raises(ValueError, match="one class"):
        segmenter.predict(support, [query], PredictOptions(mode="resize", adapt=True))
