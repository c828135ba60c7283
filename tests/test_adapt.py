"""Test-time adaptation: a fine-tuned copy, never the shipped model, used through PredictOptions;
"auto" adapts from two examples, and a set that grew continues the last adaptation."""

import numpy as np
import pytest
import torch

from napari_universeg import PredictOptions, Segmenter, SupportSet, UniverSeg, adapt
from napari_universeg.adapt import Adaptation, fine_tune
from napari_universeg.options import ADAPTING
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
    tuned = fine_tune(Adaptation(segmenter.model), pairs, steps=30, size=segmenter.size, lr=1e-3).model
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


def test_the_adapted_weights_are_the_mean_over_the_last_half_of_the_steps(segmenter):
    support, _ = _support()
    pairs = [
        (segmenter._image_tensor(ex.image.astype(np.float32), None)[0:1], segmenter._mask_tensor(ex.mask, None)[0:1].clamp(0, 1))
        for ex in support.enabled()
    ]

    def weights(steps, tail_average):
        tuned = fine_tune(Adaptation(segmenter.model), pairs, steps, segmenter.size, lr=1e-3, tail_average=tail_average)
        return tuned.model.state_dict()

    third, fourth = weights(3, False), weights(4, False)  # the same draws: the iterates after steps 3 and 4
    averaged = weights(4, True)
    for k, v in averaged.items():
        torch.testing.assert_close(v, (third[k] + fourth[k]) / 2, msg=k)
    assert any(not torch.equal(v, fourth[k]) for k, v in averaged.items())
    # the plugin's rule (None): averaged where every example is one input (resized), as here ...
    assert all(torch.equal(v, averaged[k]) for k, v in weights(4, None).items())
    # ... and the last weights where examples are larger than an input (tiled: cropped afresh)
    pairs = [(torch.nn.functional.interpolate(i, size=96), torch.nn.functional.interpolate(m, size=96)) for i, m in pairs]
    assert all(torch.equal(v, weights(4, False)[k]) for k, v in weights(4, None).items())


def test_adaptation_can_be_cancelled_and_needs_two_examples(segmenter):
    pair = (torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))
    assert fine_tune(Adaptation(segmenter.model), [pair, pair], 5, 64, cancel=lambda: True) is None
    with pytest.raises(ValueError, match="two examples"):
        fine_tune(Adaptation(segmenter.model), [pair], 5, 64)


@pytest.mark.parametrize("mode,scale", [("resize", None), ("tiled", 1.0)])
def test_predict_with_adapt_uses_a_cached_adapted_copy(segmenter, mode, scale):
    support, query = _support(n=1)  # one example: its halves make the episodes
    options = PredictOptions(mode=mode, scale=scale, adapt=True)
    first = segmenter.predict(support, [query], options)[0]
    assert first.labels.shape == query.shape
    adapted = segmenter.adaptation
    # two halves (48 x 96 pixels), each adding steps by the model inputs' worth of pixels it holds
    s = segmenter.size
    inputs = 1.0 if mode == "resize" else max(48, s) * max(96, s) / s**2
    assert adapted.steps == adapt.steps_for([inputs, inputs], continued=False) == 2 * round(adapt.STEPS_PER_EXAMPLE * inputs)
    segmenter.predict(support, [query], options)
    assert segmenter.adaptation is adapted  # not fine-tuned again
    assert adapted.model is not segmenter.model


def test_adapt_refuses_several_classes(segmenter):
    support, query = _support()
    support[0].mask[:4, :4] = 2
    with pytest.raises(ValueError, match="one class"):
        segmenter.predict(support, [query], PredictOptions(mode="resize", adapt=True))


def _steps(segmenter):
    return None if segmenter.adaptation is None else segmenter.adaptation.steps


def test_auto_adapts_from_two_examples_and_continues_as_the_set_grows(segmenter):
    image, labels = synthetic_stack(n_slices=8, size=96)
    options = PredictOptions(mode="resize", method="universeg")  # adapt None: "auto"
    support = SupportSet()
    support.add(image[0], labels[0], source="slice 0")
    segmenter.predict(support, [image[7]], options)
    assert segmenter.adaptation is None  # one example: not adapted
    support.add(image[1], labels[1], source="slice 1")
    segmenter.predict(support, [image[7]], options)
    assert _steps(segmenter) == 2 * adapt.STEPS_PER_EXAMPLE
    first = segmenter.adaptation
    support.add(image[2], labels[2], source="slice 2")  # an accepted slice: continue
    segmenter.predict(support, [image[7]], options)
    assert _steps(segmenter) == 3 * adapt.STEPS_PER_EXAMPLE
    assert first.steps == 2 * adapt.STEPS_PER_EXAMPLE  # the earlier state was copied, not changed
    smaller = SupportSet()
    for z in (0, 2, 3, 4, 5, 6):  # slice 1 removed: start afresh, at most adapt.MAX_STEPS
        smaller.add(image[z], labels[z], source=f"slice {z}")
    segmenter.predict(smaller, [image[7]], options)
    assert _steps(segmenter) == min(adapt.MAX_STEPS, 6 * adapt.STEPS_PER_EXAMPLE)
    segmenter.predict(smaller, [image[7]], PredictOptions(mode="resize", method="universeg", adapt=False))
    assert _steps(segmenter) == min(adapt.MAX_STEPS, 6 * adapt.STEPS_PER_EXAMPLE)  # adapt=False: the shipped model, nothing trained


def _two_painted_slices():
    """A stack, its labels, options that adapt by default ("auto") and slices 0 and 1 as examples."""
    image, labels = synthetic_stack(n_slices=8, size=96)
    support = SupportSet()
    for z in (0, 1):
        support.add(image[z], labels[z], source=f"slice {z}")
    return image, labels, PredictOptions(mode="resize", method="universeg"), support


def test_first_result_after_an_accept_comes_before_the_adaptation(segmenter):
    image, labels, options, support = _two_painted_slices()
    segmenter.predict(support, [image[7]], options)
    support.add(image[2], labels[2], source="slice 2")
    events, words = [], []
    for pred in segmenter.iter_predict(support, image, options, indices=[5, 6], preview=True, progress=lambda *a: events.append(a[0])):
        events.append(("preview" if pred.preview else "final", pred.index))
        words.append(pred.model)
    assert words == ["model adapted to your first 2 examples"] + ["model adapted to your 3 examples"] * 2
    assert events[0] == ("preview", 5)  # from the two-example adaptation, before any step
    assert ADAPTING in events and events.index(ADAPTING) > 0
    assert [e for e in events if isinstance(e, tuple)] == [("preview", 5), ("final", 5), ("final", 6)]
    assert _steps(segmenter) == 3 * adapt.STEPS_PER_EXAMPLE


def test_the_preview_after_an_accept_costs_the_same_whatever_the_examples(segmenter, monkeypatch):
    """The preview takes PREVIEW_SUPPORT support items (one crop of each of the newest examples)
    and tiles without overlap; the final result of the same slice uses every example's crops and
    overlapping tiles."""
    from napari_universeg import predict

    image, labels = synthetic_stack(n_slices=8, size=128)
    options = PredictOptions(mode="tiled", scale=1.0, method="universeg", adapt=True)
    support = SupportSet()
    for z in (0, 1):
        support.add(image[z], labels[z], source=f"slice {z}")
    segmenter.predict(support, [image[7]], options)
    for z in (2, 3, 4):
        support.add(image[z], labels[z], source=f"slice {z}")
    passes = []  # (tiles, support items) of each forward pass
    forward = segmenter._forward
    monkeypatch.setattr(segmenter, "_forward", lambda m, q, f, items: passes.append((q.shape[0], f.shape[1])) or forward(m, q, f, items))
    preds = {}
    for pred in segmenter.iter_predict(support, image, options, indices=[5], preview=True):
        preds[pred.preview] = len(passes)
    preview, final = passes[: preds[True]], passes[preds[True] :]
    assert sum(t for t, _ in preview) == 4 and {s for _, s in preview} == {predict.PREVIEW_SUPPORT}  # 2 x 2 tiles of 64 px
    assert sum(t for t, _ in final) == 9 and {s for _, s in final} == {5 * predict.MAX_CROPS_PER_EXAMPLE}  # 3 x 3, overlapping


def test_prepare_adapts_so_that_the_run_has_nothing_to_wait_for(segmenter):
    image, labels, options, support = _two_painted_slices()
    segmenter.prepare(support, image.shape[1:], options)
    assert _steps(segmenter) == 2 * adapt.STEPS_PER_EXAMPLE
    preds = list(segmenter.iter_predict(support, image, options, indices=[5], preview=True))
    assert [p.preview for p in preds] == [False]
    assert _steps(segmenter) == 2 * adapt.STEPS_PER_EXAMPLE


def test_auto_tests_each_example_before_training_on_it(segmenter):
    image, labels, options, support = _two_painted_slices()
    plan = segmenter.prepare(support, image.shape[1:], options)
    assert segmenter.adaptation.checks == () and _steps(segmenter) == 2 * adapt.STEPS_PER_EXAMPLE  # a test needs two known examples
    support.add(image[2], labels[2], source="slice 2")
    segmenter.prepare(support, image.shape[1:], options)
    (check,) = segmenter.adaptation.checks  # slice 2, predicted by the model tuned on slices 0 and 1, then learned
    assert -1.0 <= check <= 1.0 and _steps(segmenter) == 3 * adapt.STEPS_PER_EXAMPLE
    assert segmenter.run_model(support, plan, options) is segmenter.adaptation.model  # one test cannot drop it (Adaptation.helps)
    afresh = SupportSet()
    for z in (0, 2, 3):  # slice 1 removed: afresh, nothing held out to test it on
        afresh.add(image[z], labels[z], source=f"slice {z}")
    segmenter.prepare(afresh, image.shape[1:], options)
    assert segmenter.adaptation.checks == () and _steps(segmenter) == 3 * adapt.STEPS_PER_EXAMPLE


def test_auto_runs_the_shipped_model_where_the_adaptation_did_worse(segmenter, monkeypatch):
    image, labels, options, support = _two_painted_slices()
    segmenter.prepare(support, image.shape[1:], options)
    support.add(image[2], labels[2], source="slice 2")
    monkeypatch.setattr(Segmenter, "_test", lambda *args: -0.25)  # the tuned model did worse on each new example
    plan = segmenter.prepare(support, image.shape[1:], options)
    assert segmenter.adaptation.checks == (-0.25,) and segmenter.adaptation.helps  # one test is not clear evidence
    assert segmenter.run_model(support, plan, options) is segmenter.adaptation.model
    support.add(image[3], labels[3], source="slice 3")
    plan = segmenter.prepare(support, image.shape[1:], options)
    assert segmenter.adaptation.checks == (-0.25, -0.25) and not segmenter.adaptation.helps
    assert segmenter.run_model(support, plan, options) is segmenter.model  # trained, but not used
    always = PredictOptions(mode="resize", method="universeg", adapt=True)  # "always": used, not tested
    assert segmenter.run_model(support, plan, always) is segmenter.adaptation.model
    # worse only where the tests' mean is below 0 by more than its standard error
    assert Adaptation(segmenter.model, checks=(0.1, -0.05)).helps and Adaptation(segmenter.model).helps
    assert Adaptation(segmenter.model, checks=(-0.2, 0.1)).helps and not Adaptation(segmenter.model, checks=(-0.2, -0.01)).helps
    # the status line says which model ran
    (pred,) = segmenter.predict(support, [image[7]], options)
    assert pred.model == "shipped model: the adapted one did worse on the slices it was tested on"
    assert segmenter.predict(support, [image[7]], always)[0].model == "model adapted to your 4 examples"
    assert segmenter.predict(support, [image[7]], PredictOptions(mode="resize", method="universeg", adapt=False))[0].model == ""


@pytest.mark.parametrize("check", [0.1, -0.25])
def test_choosing_again_keeps_the_view_the_model_is_adapted_in(segmenter, monkeypatch, check):
    """At twice the examples "auto" chooses again; the shipped model's comparison of views does
    not tell how the adapted one does, so the view it was adapted in stays (only the method is
    chosen), whatever the tests said; a set that did not grow from it chooses among views."""
    image, labels = synthetic_stack(n_slices=5, size=200)  # 200 px: tiles at scale 1 and 0.5 are candidates
    options = PredictOptions(method="universeg")
    support = SupportSet()
    for z in (0, 1):
        support.add(image[z], labels[z], source=f"slice {z}")
    first = segmenter.prepare(support, image.shape[1:], options)
    assert len({(c.mode, c.scale) for c in first.candidates}) > 1  # chosen among views
    monkeypatch.setattr(Segmenter, "_test", lambda *args: check)
    monkeypatch.setattr(Segmenter, "_dice", lambda *args: 1.0 if args[5].mode == "tiled" else 0.0)  # tiles, if chosen, pass their test
    support.add(image[2], labels[2], source="slice 2")
    assert segmenter.prepare(support, image.shape[1:], options) == first  # kept until twice the examples
    assert segmenter.adaptation.checks == (check,)
    support.add(image[3], labels[3], source="slice 3")
    again = segmenter.prepare(support, image.shape[1:], options)
    assert {(c.mode, c.scale) for c in again.candidates} == {(first.mode, first.scale)} and again == first
    assert segmenter.adaptation.steps == 4 * adapt.STEPS_PER_EXAMPLE  # continued, not started afresh
    other = SupportSet()
    for z in (0, 2, 3, 4):  # slice 1 left out: not grown from any earlier set
        other.add(image[z], labels[z], source=f"slice {z}")
    assert len({(c.mode, c.scale) for c in segmenter.prepare(other, image.shape[1:], options).candidates}) > 1


def _tiled_then_tested(segmenter, monkeypatch, tiles_dice):
    """Two examples on which "auto" chooses tiles (forced) and adapts in them, then a third on
    which the tiled adaptation and a resized one score ``tiles_dice`` and 0.5: the plan after it."""
    from napari_universeg import choice

    monkeypatch.setattr(choice, "clear_winner", lambda dices, margin=0.0: len(dices) - 1)  # the finest tiles validated
    image, labels = synthetic_stack(n_slices=5, size=200)
    options = PredictOptions(method="universeg")
    support = SupportSet()
    for z in (0, 1):
        support.add(image[z], labels[z], source=f"slice {z}")
    first = segmenter.prepare(support, image.shape[1:], options)
    assert first.mode == "tiled" and segmenter.adaptation.checks == ()
    tiled = segmenter.adaptation
    monkeypatch.setattr(Segmenter, "_dice", lambda *args: tiles_dice if args[5].mode == "tiled" else 0.5)
    support.add(image[2], labels[2], source="slice 2")
    return first, tiled, segmenter.prepare(support, image.shape[1:], options)


def test_tiles_chosen_by_the_shipped_model_stay_where_their_adaptation_passes_its_test(segmenter, monkeypatch):
    first, tiled, plan = _tiled_then_tested(segmenter, monkeypatch, 0.6)
    assert plan == first and plan.estimate == first.estimate
    assert segmenter.adaptation.steps > tiled.steps and len(segmenter.adaptation.checks) == 1  # the tiled one, continued


def test_tiles_give_way_to_the_resized_view_where_an_adaptation_in_it_does_better(segmenter, monkeypatch):
    first, tiled, plan = _tiled_then_tested(segmenter, monkeypatch, 0.4)
    assert (plan.mode, plan.method, plan.estimate) == ("resize", first.method, None)  # the tiled estimate does not hold for it
    # the resized rival, adapted afresh on the two learned examples (resized: 40 steps each), continued
    # with the third and tested on it before
    assert segmenter.adaptation is not tiled and len(segmenter.adaptation.checks) == 1
    assert segmenter.adaptation.steps == 3 * adapt.STEPS_PER_EXAMPLE
