#!/usr/bin/env bash
# The real workload, side by side: `lenet train --config configs/lenet5.toml` on real MNIST against
# the same recipe in PyTorch's plain training loop (../shared/bench/torch_lenet.py --data: LeNet-5,
# Adam 2e-3, cosine to 0 per step, batch 64, 55,000 training images), alternating lenet and
# PyTorch on the same cores. Prints each round and the medians: training images/s, training
# seconds and test accuracy, and the ratio lenet / PyTorch of the training throughput.
# Not part of CI.
#
#   scripts/compare-pytorch-training.sh [ROUNDS] [EPOCHS]      (default 3 rounds of 3 epochs)
#
# Environment: LENET_DATA_DIR (default ../shared/data), and LENET, PYTHON, TORCH_BENCH, THREADS
# as in scripts/side-by-side.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
epochs="${2:-3}"
data="${LENET_DATA_DIR:-../shared/data}"
[ -f "$data/mnist/train-images-idx3-ubyte.gz" ] || { echo "no MNIST under $data (set LENET_DATA_DIR)" >&2; exit 2; }
# shellcheck source=scripts/side-by-side.sh
. scripts/side-by-side.sh

echo "lenet: $LENET (RAYON_NUM_THREADS=$threads); PyTorch: $python, $threads threads; $rounds rounds of $epochs epochs"
for i in $(seq 1 "$rounds"); do
  echo "round $i/$rounds: lenet"
  RAYON_NUM_THREADS="$threads" LENET_DATA_DIR="$data" "$LENET" train --config configs/lenet5.toml \
    --epochs "$epochs" --offline --quiet --run-dir "$out/lenet-$i" > /dev/null
  echo "round $i/$rounds: PyTorch"
  "$python" "$torch_bench" --threads "$threads" --skip-throughput --data "$data/mnist" \
    --epochs "$epochs" --lr 2e-3 --schedule cosine --holdout 5000 --json "$out/torch-$i.json" > /dev/null
done

"$python" - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(1, rounds + 1):
    s = json.load(open(f"{out}/lenet-{i}/summary.json"))
    t = json.load(open(f"{out}/torch-{i}.json"))
    images = 55_000 * len(t["epochs"])
    t_seconds = sum(e["train_s"] for e in t["epochs"])
    rows.append((s["images_per_second"], s["train_seconds"], s["test_accuracy"],
                 images / t_seconds, t_seconds, t["epochs"][-1]["test_acc"]))
print(f"\n{'round':<7}{'lenet img/s':>12}{'s':>7}{'test %':>8}   {'PyTorch img/s':>13}{'s':>7}{'test %':>8}   ratio")
for i, r in enumerate(rows, 1):
    print(f"{i:<7}{r[0]:>12.0f}{r[1]:>7.1f}{100*r[2]:>8.2f}   {r[3]:>13.0f}{r[4]:>7.1f}{100*r[5]:>8.2f}   {r[0]/r[3]:.2f}x")
med = [statistics.median(c) for c in zip(*rows)]
print(f"{'median':<7}{med[0]:>12.0f}{med[1]:>7.1f}{100*med[2]:>8.2f}   {med[3]:>13.0f}{med[4]:>7.1f}{100*med[5]:>8.2f}   {med[0]/med[3]:.2f}x")
PY
