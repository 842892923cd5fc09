#!/usr/bin/env bash
# The recipe of weights/regressor.safetensors (model card: weights/README.md), on a 2-core CPU.
# Each stage resumes from its checkpoint in runs/ when run again; a finished stage is skipped.
#   1. keypoint lifter alone, 4000 x 256 samples (~40 min, no Procrustes loss)
#   2. lifter again with the Procrustes-aligned keypoint loss, 1500 x 256 new samples (~15 min)
#   3. the whole network with images (mask + heatmaps through the ResNet50), 1200 x 32 new
#      samples (~35 min), the ResNet trunk taken from the first network (format 1, commit 2573408,
#      3000 x 32 samples from scratch), the lifter at a fifth of the learning rate
#   4. keypoint lifter again from stage 3, 4000 x 256 new samples (~45 min; the ResNet is carried along)
#   5. the whole network with images again from stage 4, 1000 x 32 new samples (~30 min)
#   6. keypoint lifter again without dropout (the data never repeats, so dropout only held the fit
#      back), 3000 x 256 new samples (~42 min)
#   7. the same at a lower rate, 2000 x 256 new samples (~17 min)
#   8. the whole network with images again from stage 7, without dropout, 1000 x 32 new samples (~29 min)
#   9. keypoint lifter again from stage 8, 2476 x 1024 new samples, then
#  10. 1652 x 4096 more: 9.3 M samples, on a GPU (DEVICE=cuda WORKERS=15: loader workers draw on the
#      CPU cores, the GPU makes and trains, about 25,000 samples/s on an H200 with 16 cores; on this
#      2-core CPU about 450 samples/s, 6 hours; python -m training.gpu_bundle for a GPU machine without
#      this project's environment). The shipped weights ran these two stages timed
#      (--minutes 5 and 4.5, the learning rate following the clock); --steps gives the same lengths.
# Then: .venv/bin/python -m benchmarks regressor --weights runs/stage10/lifter.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p runs
if [ ! -f runs/prev_regressor.safetensors ]; then
  git show 2573408:weights/regressor.safetensors > runs/prev_regressor.safetensors.part
  mv runs/prev_regressor.safetensors.part runs/prev_regressor.safetensors
fi
$PY -m training.train --keypoints-only --steps 4000 --batch 256 --lr 1e-3 --threads 1 --workers 1 \
  --pa-weight 0 --eval-every 500 --val-size 512 --checkpoint runs/lifter/checkpoint.pt --weights runs/lifter/lifter.safetensors
$PY -m training.train --keypoints-only --steps 1500 --batch 256 --lr 3e-4 --threads 1 --workers 1 \
  --eval-every 500 --val-size 512 --init-from runs/lifter/lifter.safetensors --seed-offset 2000000 \
  --checkpoint runs/lifter2/checkpoint.pt --weights runs/lifter2/lifter.safetensors
$PY -m training.train --steps 1200 --batch 32 --lr 3e-4 --lifter-lr-scale 0.2 --threads 2 --workers 1 \
  --eval-every 300 --val-size 256 --init-from runs/lifter2/lifter.safetensors \
  --trunk-from runs/prev_regressor.safetensors --seed-offset 4000000 \
  --checkpoint runs/regressor/checkpoint.pt --weights runs/regressor/regressor.safetensors
$PY -m training.train --keypoints-only --steps 4000 --batch 256 --lr 3e-4 --threads 1 --workers 1 \
  --eval-every 500 --val-size 512 --init-from runs/regressor/regressor.safetensors --seed-offset 6000000 \
  --checkpoint runs/lifter3/checkpoint.pt --weights runs/lifter3/lifter.safetensors
$PY -m training.train --steps 1000 --batch 32 --lr 2e-4 --lifter-lr-scale 0.2 --threads 2 --workers 1 \
  --eval-every 250 --val-size 256 --init-from runs/lifter3/lifter.safetensors --seed-offset 8000000 \
  --checkpoint runs/regressor5/checkpoint.pt --weights runs/regressor5/regressor.safetensors
$PY -m training.train --keypoints-only --steps 3000 --batch 256 --lr 2e-4 --dropout 0 --threads 1 --workers 1 \
  --eval-every 500 --val-size 512 --init-from runs/regressor5/regressor.safetensors --seed-offset 8100000 \
  --checkpoint runs/lifter6/checkpoint.pt --weights runs/lifter6/lifter.safetensors
$PY -m training.train --keypoints-only --steps 2000 --batch 256 --lr 1.5e-4 --dropout 0 --threads 1 --workers 1 \
  --eval-every 500 --val-size 512 --init-from runs/lifter6/lifter.safetensors --seed-offset 8900000 \
  --checkpoint runs/lifter7/checkpoint.pt --weights runs/lifter7/lifter.safetensors
$PY -m training.train --steps 1000 --batch 32 --lr 2e-4 --lifter-lr-scale 0.2 --dropout 0 --threads 2 --workers 1 \
  --eval-every 250 --val-size 256 --init-from runs/lifter7/lifter.safetensors --seed-offset 9500000 \
  --checkpoint runs/regressor8/checkpoint.pt --weights runs/regressor8/regressor.safetensors
DEVICE=${DEVICE:-cpu}
WORKERS=${WORKERS:-1}
$PY -m training.train --keypoints-only --steps 2476 --batch 1024 --lr 5e-4 --dropout 0 --threads 1 --workers "$WORKERS" \
  --device "$DEVICE" --eval-every 1000 --val-size 1024 --init-from runs/regressor8/regressor.safetensors --seed-offset 40000000 \
  --checkpoint runs/stage9/checkpoint.pt --weights runs/stage9/lifter.safetensors
$PY -m training.train --keypoints-only --steps 1652 --batch 4096 --lr 5e-4 --dropout 0 --threads 1 --workers "$WORKERS" \
  --device "$DEVICE" --eval-every 400 --val-size 1024 --init-from runs/stage9/lifter.safetensors --seed-offset 45000000 \
  --checkpoint runs/stage10/checkpoint.pt --weights runs/stage10/lifter.safetensors
