import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for the naive reference model

EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata"


@pytest.fixture
def evaldata() -> Path:
    if not EVALDATA.is_dir():
        pytest.skip("../shared/evaldata is not available")
    return EVALDATA
