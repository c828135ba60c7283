from pathlib import Path

import pytest

from napari_universeg.evaluate import evaldata_dir

EVALDATA = evaldata_dir()


@pytest.fixture
def evaldata() -> Path:
    if not EVALDATA.is_dir():
        pytest.skip(f"{EVALDATA} is not available (set NAPARI_UNIVERSEG_EVALDATA)")
    return EVALDATA
