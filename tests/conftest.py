from pathlib import Path

import pytest

from napari_universeg.evaluate import evaldata_dir

EVALDATA = evaldata_dir()


@pytest.fixture
def evaldata() -> Path:
    if not EVALDATA.is_dir():
        pytest.skip(f"{EVALDATA} is not available (set NAPARI_UNIVERSEG_EVALDATA)")
    return EVALDATA


@pytest.fixture(autouse=True)
def few_adaptation_steps(monkeypatch):
    """Tests adapt with 4 steps per example (8 for a large one, at most 20), not 40 (80, at most
    200): they test what adaptation does to the flow (copies, continuation, tests, views,
    messages), not how much it gains, which benchmarks/adapt.py and annotation_loop.py measure. A step of the default model
    takes about 1.5 s on a 2-core CPU without AVX-512, where 40 an example made the suite take 25 min."""
    from napari_universeg import adapt

    monkeypatch.setattr(adapt, "STEPS_PER_EXAMPLE", 4)
    monkeypatch.setattr(adapt, "STEPS_PER_LARGE_EXAMPLE", 8)
    monkeypatch.setattr(adapt, "MAX_STEPS", 20)
