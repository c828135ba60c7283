#!/usr/bin/env bash
# One prepared GPU training run: trains the default config for MINUTES of wall time, fitting the
# learning-rate schedule to that time, and leaves checkpoint.pt and logs in $OUT/run.
#   OUT=/some/dir MINUTES=8 bash training/gpu_run.sh
# Resume later (on any device) with: python -m training.train --config training/configs/default.yaml --out <run dir>
set -euo pipefail
export PYTHONPATH=src:. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m training.train --config "${CONFIG:-training/configs/default.yaml}" --out "$OUT/run" \
    --minutes "${MINUTES:-8}" --fit-schedule --device cuda 2>&1 | tee "$OUT/train.log"
