"""Tests of the synthetic task generator (small images so the file runs in seconds)."""

import pytest
import torch

from napari_universeg.training.synth import FAMILIES, TaskGenerator

SIZE = 64


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, ...]:
    return TaskGenerator(size=SIZE, seed=0).sample(8, 4)


def test_shapes_and_dtypes(batch):
    q, qm, s, sm = batch
    assert q.shape == qm.shape == (8, 1, SIZE, SIZE)
    assert s.shape == sm.shape == (8, 4, 1, SIZE, SIZE)
    for t in batch:
        assert t.dtype == torch.float32
        assert t.device.type == "cpu"


def test_value_ranges(batch):
    q, qm, s, sm = batch
    for img in (q, s):
        assert img.min() >= 0 and img.max() <= 1
        assert torch.isfinite(img).all()
    for mask in (qm, sm):
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_foreground_fractions_not_degenerate(batch):
    _, qm, _, sm = batch
    query_frac = qm.mean((1, 2, 3))
    assert ((query_frac >= 0.005) & (query_frac <= 0.95)).all()
    support_frac = sm.mean((2, 3, 4))
    ok = (support_frac >= 0.005) & (support_frac <= 0.95)
    assert ok.float().mean() >= 0.75
    assert 0.05 < float(sm.mean()) < 0.9


def test_tasks_in_a_batch_differ(batch):
    q = batch[0].flatten(1)
    assert all(not torch.equal(q[i], q[j]) for i in range(8) for j in range(i + 1, 8))


def test_determinism_by_seed():
    a = TaskGenerator(size=SIZE, seed=3).sample(3, 2)
    b = TaskGenerator(size=SIZE, seed=3).sample(3, 2)
    c = TaskGenerator(size=SIZE, seed=4).sample(3, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_successive_samples_differ():
    gen = TaskGenerator(size=SIZE, seed=0)
    assert not torch.equal(gen.sample(2, 2)[0], gen.sample(2, 2)[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_alone(family):
    gen = TaskGenerator(size=SIZE, seed=1, families=[family])
    assert gen.families == (family,)
    q, qm, s, sm = gen.sample(2, 3)
    assert s.shape == (2, 3, 1, SIZE, SIZE)
    assert q.min() >= 0 and q.max() <= 1
    assert set(torch.cat([qm.flatten(), sm.flatten()]).unique().tolist()) <= {0.0, 1.0}
    assert qm.flatten(1).amax(1).all()  # every query has some foreground


def test_default_uses_all_families():
    assert TaskGenerator(size=SIZE).families == FAMILIES


@pytest.mark.parametrize("families", [["blobs", "nope"], []])
def test_bad_family_list_raises(families):
    with pytest.raises(ValueError):
        TaskGenerator(size=SIZE, families=families)
