"""The split cross-conv model against the paper's literal formula, and the official key layout."""

import pytest
import torch

from napari_universeg import UniverSeg
from napari_universeg.weights import WeightsError, from_official_state_dict, load_official_state_dict, official_key_map
from tests.naive_universeg import naive_forward, official_shapes, random_official_state_dict

TINY = dict(enc=(8, 8, 8, 8), dec=(8, 8, 8))

# The official checkpoint's tensors (reference note's table), written out independently of the
# code. The note says "42 tensors" but its table lists 7 blocks x 3 convs x 2 + the head = 44,
# and only 44 give its 1,182,785 parameters.
OFFICIAL_TABLE = {
    **{f"enc_blocks.0.cross.cross_conv.{p}": s for p, s in (("weight", (64, 3, 3, 3)), ("bias", (64,)))},
    **{f"enc_blocks.{i}.cross.cross_conv.{p}": s for i in (1, 2, 3) for p, s in (("weight", (64, 128, 3, 3)), ("bias", (64,)))},
    **{f"dec_blocks.{i}.cross.cross_conv.{p}": s for i in (0, 1, 2) for p, s in (("weight", (64, 256, 3, 3)), ("bias", (64,)))},
    **{
        f"{b}.{i}.{part}.vmapped.conv.{p}": s
        for b, n in (("enc_blocks", 4), ("dec_blocks", 3))
        for i in range(n)
        for part in ("target", "support")
        for p, s in (("weight", (64, 64, 3, 3)), ("bias", (64,)))
    },
    "out_conv.conv.weight": (1, 64, 1, 1),
    "out_conv.conv.bias": (1,),
}


def _inputs(b, s, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(b, 1, size, size, generator=g)
    si = torch.rand(b, s, 1, size, size, generator=g)
    sl = (torch.rand(b, s, 1, size, size, generator=g) > 0.5).float()
    return q, si, sl


def test_official_table_and_model_layout_agree():
    assert len(OFFICIAL_TABLE) == 44
    assert official_shapes() == OFFICIAL_TABLE
    model = UniverSeg()
    assert sum(p.numel() for p in model.parameters()) == 1_182_785
    mapping = official_key_map(model.config)
    ours = model.state_dict()
    assert sorted(mapping) == sorted(OFFICIAL_TABLE) and sorted(mapping.values()) == sorted(ours)
    for key, shape in OFFICIAL_TABLE.items():
        assert tuple(ours[mapping[key]].shape) == shape, key


@pytest.mark.parametrize("s,size,batch", [(1, 16, 1), (3, 32, 2), (8, 24, 1), (5, 16, 3)])
def test_split_cross_conv_equals_concatenation(s, size, batch):
    sd = random_official_state_dict(**TINY, seed=s)
    model = UniverSeg(TINY["enc"], TINY["dec"]).eval()
    load_official_state_dict(model, sd)
    q, si, sl = _inputs(batch, s, size, seed=size)
    with torch.no_grad():
        ours = model(q, si, sl)
        ref = naive_forward(sd, q, si, sl)
    assert ours.shape == (batch, 1, size, size)
    assert (ours - ref).abs().max().item() <= 1e-5


def test_full_width_model_loads_official_layout_exactly():
    sd = random_official_state_dict(seed=3)
    model = from_official_state_dict(sd)
    q, si, sl = _inputs(1, 2, 32)
    with torch.no_grad():
        assert (model(q, si, sl) - naive_forward(sd, q, si, sl)).abs().max().item() <= 1e-5
    # every tensor landed where the map says
    mapping = official_key_map(model.config)
    ours = model.state_dict()
    for k, v in sd.items():
        assert torch.equal(ours[mapping[k]], v), k


def test_training_mode_gives_the_same_output_and_gradients_flow():
    sd = random_official_state_dict(**TINY)
    model = UniverSeg(TINY["enc"], TINY["dec"])
    load_official_state_dict(model, sd)
    q, si, sl = _inputs(2, 3, 16)
    out = model.train()(q, si, sl)
    assert (out - naive_forward(sd, q, si, sl)).abs().max().item() <= 1e-5
    out.mean().backward()
    # The last decoder block's support conv never reaches the output (in the official model too).
    unused = {"decoder.2.support_conv.weight", "decoder.2.support_conv.bias"}
    assert all((p.grad is None) == (name in unused) for name, p in model.named_parameters())


def test_shared_support_and_cached_features_match_per_query_support():
    model = UniverSeg(TINY["enc"], TINY["dec"]).eval()
    q, si, sl = _inputs(3, 4, 16)
    with torch.no_grad():
        shared = model(q, si[:1], sl[:1])
        per_query = model(q, si[:1].expand(3, -1, -1, -1, -1), sl[:1].expand(3, -1, -1, -1, -1))
        cached = model(q, support_features=model.support_features(si[:1], sl[:1]))
    assert torch.allclose(shared, per_query, atol=1e-6) and torch.allclose(shared, cached, atol=1e-6)


def test_support_order_invariance():
    model = UniverSeg(TINY["enc"], TINY["dec"]).eval()
    q, si, sl = _inputs(1, 5, 16)
    perm = torch.tensor([4, 2, 0, 3, 1])
    with torch.no_grad():
        assert torch.allclose(model(q, si, sl), model(q, si[:, perm], sl[:, perm]), atol=1e-5)


def test_bad_state_dicts_name_the_problem():
    model = UniverSeg()
    sd = random_official_state_dict()
    missing = dict(sd)
    del missing["dec_blocks.1.support.vmapped.conv.bias"]
    with pytest.raises(WeightsError, match="dec_blocks.1.support.vmapped.conv.bias"):
        load_official_state_dict(model, missing)
    extra = dict(sd, **{"extra.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="extra.weight"):
        load_official_state_dict(model, extra)
    wrong = dict(sd, **{"out_conv.conv.weight": torch.zeros(1, 32, 1, 1)})
    with pytest.raises(WeightsError, match="out_conv.conv.weight"):
        load_official_state_dict(model, wrong)


def test_image_size_must_be_divisible():
    model = UniverSeg(TINY["enc"], TINY["dec"])
    q, si, sl = _inputs(1, 1, 20)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(q, si, sl)


@pytest.mark.parametrize("chunk", [1, 3, 4, 100])
def test_support_items_a_few_at_a_time_give_the_same_output(chunk):
    model = UniverSeg(TINY["enc"], TINY["dec"]).eval().to(memory_format=torch.channels_last)
    q, si, sl = _inputs(2, 7, 32, seed=3)
    with torch.inference_mode():
        whole = model(q, si, sl)
        shared = model.support_features(si[:1], sl[:1])
        parts = model(q, si, sl, chunk=chunk)
        parts_shared = model(q, support_features=shared, chunk=chunk)
        whole_shared = model(q, support_features=shared)
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts_shared, whole_shared, rtol=1e-5, atol=1e-6)
