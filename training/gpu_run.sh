#!/usr/bin/env bash
# The one prepared training command, for a lent GPU (or any machine): continues the committed run
# training/runs/real (or starts it from the shipped default weights), checkpointing every 250
# steps, and leaves the run folder (checkpoint.pt, logs) in $OUT/run, to be copied back and committed.
#   OUT=/some/dir MINUTES=9 bash training/gpu_run.sh
# Needs the real-task cache (napari-universeg-prepare-data, from fetched sources); on a device
# machine, carry training/data/cache.
set -euo pipefail
RUN=${RUN:-training/runs/real}
CONFIG=${CONFIG:-training/configs/real.yaml}
export PYTHONPATH=src:. PYTHONUNBUFFERED=1  # a device machine has torch but not this package installed
nvidia-smi --query-gpu=name,memory.total --format=csv || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
mkdir -p "$OUT/run"
if [[ -d "$RUN" ]]; then cp -r "$RUN/." "$OUT/run/"; fi
python3 -m training.train --config "$CONFIG" --out "$OUT/run" --init default \
    --minutes "${MINUTES:-9}" ${DEVICE:+--device "$DEVICE"} 2>&1 | tee -a "$OUT/run/train.log"
