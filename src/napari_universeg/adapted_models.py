"""Which model UniverSeg runs with for a support set: the shipped one, or a copy fine-tuned on the
examples (adapt.py) that is kept, continued and tested, its view included, as the annotation loop
adds examples.

``AdaptedModels`` is this part of predict.Segmenter, kept apart from the prediction itself. It
uses the Segmenter's shipped ``model``, ``size`` (model input side), ``dtype`` (autocast),
``_example_tensors`` (an example in a view), ``universeg_probs`` (one image's probabilities from
examples) and two attributes its ``__init__`` sets: ``_adapted`` (the last adaptation:
view key, example keys, Adaptation; one is kept, models are large) and ``_adapting`` (a lock:
one adaptation at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from .adapt import MIN_EXAMPLES, Adaptation, fine_tune, steps_for
from .choice import Plan, class_labels, clear_gain, halves, labels_from_probs
from .crops import pad_to
from .metrics import class_dice
from .model import UniverSeg
from .options import ADAPTING, PredictOptions
from .support import Example, content_key, ensemble_subsets


class AdaptedModels:
    """The adaptation bookkeeping of predict.Segmenter (module docstring)."""

    @property
    def adaptation(self) -> Adaptation | None:
        """The last adaptation (tuned model, optimiser state, steps taken), if there was one."""
        return None if self._adapted is None else self._adapted[2]

    @staticmethod
    def adapts(examples: Sequence[Example], classes: Sequence[int], options: PredictOptions) -> bool:
        """Whether UniverSeg is fine-tuned on the examples first: with ``options.adapt`` True
        always, False never, None ("auto") from adapt.MIN_EXAMPLES examples of one class."""
        if options.adapt is None:
            return options.task == "classes" and len(classes) == 1 and len(examples) >= MIN_EXAMPLES
        return options.adapt

    def adapted_model(
        self, examples, classes, plan: Plan, options: PredictOptions, cancel=None, progress=None, train: bool = True
    ) -> UniverSeg | None:
        """The model UniverSeg runs with for these examples and plan: the Segmenter's, or (when
        ``adapts``) a copy fine-tuned on episodes from the examples in the plan's view; None if
        cancelled. A set that grew from the last adapted one continues its adaptation with
        steps per new example (adapt.steps_for); any other set starts afresh from the
        shipped weights (an example removed or changed is forgotten). Without ``train``, the
        last adaptation of a set these examples grew from (or the shipped model) is returned at
        once: the first result after an accept comes from it. ``progress(ADAPTING, done, total)``.

        Test, then train: with "auto", an example added to an adapted set is first predicted
        by the adaptation made without it and by the shipped model, from the examples learned
        so far, and the difference in Dice is kept (Adaptation.checks); an adaptation made on
        the halves of a single example is not tested, since "auto" never runs one. Where the
        adaptation has clearly done worse (Adaptation.helps: two tests at least), "auto" runs
        the shipped model (it keeps training, so later examples may turn this round). A fresh adaptation has nothing held out and
        is not tested (training it on all but one example first, to test it, lost 0.04 Dice
        in the neuron loop at four examples)."""
        if not self.adapts(examples, classes, options):
            return self.model
        if len(classes) != 1:
            raise ValueError("adaptation works on one class at a time: choose one with the classes option")
        view, members = self._adaptation_key(examples, classes, plan, options)
        last = self._grown_from(view, members)  # without the lock: a first result does not wait for training
        if last is not None and last[1] == members:
            return self._chosen(last[2], options)
        if not train:
            return self.model if last is None else self._chosen(last[2], options)
        with self._adapting:  # one adaptation at a time; a second caller takes the first's result
            last = self._grown_from(view, members)
            if last is not None and last[1] == members:
                return self._chosen(last[2], options)
            keyed = self._adaptation_pairs(examples, classes[0], plan, options)
            pairs = [(image, mask) for _, image, mask in keyed]
            if last is None:  # afresh: every example (or both halves of one)
                start, steps = Adaptation(self.model), steps_for([self._inputs(m) for m in pairs], continued=False)
            else:
                new = [(image, mask) for key, image, mask in keyed if key not in last[1]]
                start, steps = last[2], steps_for([self._inputs(m) for m in new], continued=True)
                # The new examples test it before it learns them; "always" trusts it untested, and
                # one made on a single example's halves is never run by "auto".
                if options.adapt is None and len(last[1]) >= MIN_EXAMPLES:
                    learned = [content_key([ex], None) in last[1] for ex in examples]
                    known = [ex for ex, k in zip(examples, learned) if k]
                    tests = [self._test(start.model, known, ex, classes, plan, options) for ex, k in zip(examples, learned) if not k]
                    start = replace(start, checks=start.checks + tuple(tests))
            report = None if progress is None else lambda done, total: progress(ADAPTING, done, total)
            tuned = fine_tune(start, pairs, steps, self.size, seed=options.seed, cancel=cancel, progress=report, dtype=self.dtype)
            if tuned is None:
                return None
            tuned.model = tuned.model.to(memory_format=torch.channels_last)
            self._adapted = (view, members, tuned)
            return self._chosen(tuned, options)

    def _inputs(self, pair: tuple[torch.Tensor, torch.Tensor]) -> float:
        """How many model inputs' worth of pixels an adaptation pair holds (1 when resized)."""
        return pair[0].shape[-2] * pair[0].shape[-1] / self.size**2

    def _chosen(self, adaptation: Adaptation, options: PredictOptions) -> UniverSeg:
        """The adapted model, unless "auto" found it worse on the examples it was tested on."""
        return adaptation.model if options.adapt or adaptation.helps else self.model

    def _test(self, model: UniverSeg, known, example: Example, classes, plan: Plan, options: PredictOptions) -> float:
        """Dice of ``model`` minus Dice of the shipped model on ``example``, each predicting it
        from the ``known`` examples in the plan's view."""
        return self._dice(model, known, example, classes, plan, options) - self._dice(self.model, known, example, classes, plan, options)

    def _dice(self, model: UniverSeg, known, example: Example, classes, plan: Plan, options: PredictOptions) -> float:
        """Dice of ``model`` on ``example``, predicting it from the ``known`` examples in the plan's view."""
        probs = self.universeg_probs(known, example.image, plan, classes, options, model)
        return class_dice(labels_from_probs(probs, classes, options.threshold), class_labels(example.mask, classes), classes)

    def _adaptation_key(self, examples, classes, plan: Plan, options: PredictOptions) -> tuple[str, frozenset[str]]:
        """What an adaptation is for: the view (with classes, seed and support size) and the examples."""
        view = content_key([], (plan.mode, plan.scale, list(classes), options.seed, options.support_size))
        return view, frozenset(content_key([ex], None) for ex in examples)

    def _grown_from(self, view: str, members: frozenset[str]) -> tuple[str, frozenset[str], Adaptation] | None:
        """The last adaptation if it was made in ``view`` on some or all of ``members``, else None."""
        last = self._adapted
        return last if last is not None and last[0] == view and last[1] <= members else None

    def _adaptation_pending(self, examples, classes, plan: Plan, options: PredictOptions) -> bool:
        """Whether a run with this plan has to fine-tune the model first."""
        if not (plan.uses_universeg and self.adapts(examples, classes, options)):
            return False
        view, members = self._adaptation_key(examples, classes, plan, options)
        last = self._grown_from(view, members)
        return last is None or last[1] != members

    def _adaptation_pairs(self, examples, cls: int, plan: Plan, options: PredictOptions) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """Per example the run's support uses (or half of a single one): its key, its image in the
        plan's view ((1, 1, size, size) resized, or (1, 1, h, w) whole at the tile scale, padded up
        to size, which adaptation crops afresh each time it draws it) and the 0/1 mask of class ``cls``."""
        scale = None if plan.mode == "resize" else plan.scale
        used = sorted(set(np.concatenate(ensemble_subsets(len(examples), options)).tolist()))  # as Segmenter._support_tensors
        examples = [examples[i] for i in used]
        pairs = []
        for ex in examples:
            key = content_key([ex], None)
            for part in halves(ex) if len(examples) == 1 else [ex]:
                image, mask = self._example_tensors(part, scale)
                image, mask = image[0:1], (mask[0:1] == cls).float()
                if scale is not None:
                    image, mask = pad_to(image, self.size), pad_to(mask, self.size)
                pairs.append((key, image, mask))
        return pairs

    def _adapted_view(self, grown: Plan | None, examples, classes, options: PredictOptions) -> Plan | None:
        """The view of ``grown`` (the plan of a set these examples grew from) if the model has
        been adapted in it to some of these examples, else None.

        The choice compares views with the shipped model, and a new view starts the adaptation
        afresh, untested (Segmenter.adapted_model): a switch would replace a model tuned and
        tested on the user's slices by an untested one, on the word of the shipped model alone.
        On a neuron series that word was wrong: at four examples it preferred tiles (held-out
        Dice 0.57 against 0.48), where the shipped model got 0.68 on the other slices with tiles
        and 0.70 on whole resized images, and the adapted one 0.64 with tiles and 0.75 resized.
        So a re-choice keeps the adapted view and chooses only the method; whether the adapted
        or the shipped model runs in it is the test's to say (``_chosen``). A tiled view is
        itself tested once, by the adapted model, when the next example comes (``_tested_view``)."""
        if grown is None or not grown.uses_universeg or not self.adapts(examples, classes, options):
            return None
        view, members = self._adaptation_key(examples, classes, grown, options)
        return None if self._grown_from(view, members) is None else Plan(grown.mode, grown.scale)

    def _tested_view(self, grown: Plan, examples, classes, options: PredictOptions, cancel, progress) -> Plan | None:
        """``grown`` (kept for a set that grew from its examples), in the view the model that will
        run does best in; None if cancelled.

        A tiled view is chosen by the shipped model's leave-one-out, and the adaptation that
        starts with it lasts the session (``_adapted_view``). The adapted model may rank the
        views otherwise: on a neuron series, 10 of 15 loop runs went to tiles at 1/2 at the
        second example and ended 0.05 below the runs that stayed resized, while on the EM stack
        and a nuclei set adapted tiles were right by 0.02-0.10 (README, "The annotation loop").
        So when the first examples arrive that the adaptation has not learned ("auto" only), a
        model adapted in the resized view to the same examples is made, and both predict the
        new examples from the learned ones, each in its view: tiles stay if they do clearly
        better (choice.clear_gain), else the resized view and its adaptation take over. Resize
        is the default view, as in the choice; a resized rival costs one short adaptation."""
        if grown.mode == "resize" or not grown.uses_universeg or options.adapt is not None or not self.adapts(examples, classes, options):
            return grown
        view, members = self._adaptation_key(examples, classes, grown, options)
        last = self._grown_from(view, members)
        if last is None or last[1] == members or last[2].checks:  # not this view's untested first adaptation
            return grown
        known = [content_key([ex], None) in last[1] for ex in examples]
        learned = [ex for ex, k in zip(examples, known) if k]
        new = [ex for ex, k in zip(examples, known) if not k]
        resized = Plan("resize")
        pairs = [(image, mask) for _, image, mask in self._adaptation_pairs(learned, classes[0], resized, options)]
        report = None if progress is None else lambda done, total: progress(ADAPTING, done, total)
        steps = steps_for([self._inputs(p) for p in pairs], continued=False)
        rival = fine_tune(Adaptation(self.model), pairs, steps, self.size, seed=options.seed, cancel=cancel, progress=report, dtype=self.dtype)
        if rival is None:
            return None
        rival.model = rival.model.to(memory_format=torch.channels_last)

        def dices(model: UniverSeg, plan: Plan) -> list[float]:
            return [self._dice(model, learned, ex, classes, plan, options) for ex in new]

        if clear_gain(dices(last[2].model, grown), dices(rival.model, resized)) > 0:
            return grown
        with self._adapting:
            self._adapted = (self._adaptation_key([], classes, resized, options)[0], last[1], rival)
        return replace(grown, mode="resize", scale=1.0, estimate=None, held_out=0)
