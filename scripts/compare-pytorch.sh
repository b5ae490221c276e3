#!/usr/bin/env bash
# Side-by-side speed of lenet and the PyTorch reference (../shared/bench/torch_lenet.py): the
# same LeNet-5, the same protocol (random data, warm-up, 5 timed windows, median), on the same
# cores, alternating lenet and PyTorch so that both see the same machine load. Prints the median
# of each side over the rounds and the ratio lenet / PyTorch per batch size. Not part of CI.
#
#   scripts/compare-pytorch.sh [ROUNDS]          (default 3)
#
# Environment: BACKEND (default flex), and LENET, PYTHON, TORCH_BENCH, THREADS as in
# scripts/side-by-side.sh (PyTorch in a venv outside the repository:
#   python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
backend="${BACKEND:-flex}"
# shellcheck source=scripts/side-by-side.sh
. scripts/side-by-side.sh

echo "lenet: $LENET (backend $backend, RAYON_NUM_THREADS=$threads); PyTorch: $python, $threads threads; $rounds rounds"
for i in $(seq 1 "$rounds"); do
  echo "round $i/$rounds: lenet"
  RAYON_NUM_THREADS="$threads" "$LENET" bench --train --inference --batch-sizes 64,256 \
    --steps 50 --backend "$backend" --json > "$out/lenet-$i.json"
  echo "round $i/$rounds: PyTorch"
  "$python" "$torch_bench" --threads "$threads" --batches 64,256 --json "$out/torch-$i.json" > /dev/null
done

"$python" - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
lenet = [json.load(open(f"{out}/lenet-{i}.json")) for i in range(1, rounds + 1)]
torch = [json.load(open(f"{out}/torch-{i}.json")) for i in range(1, rounds + 1)]
rows = [("train", 64, "train_64"), ("train", 256, "train_256"), ("inference", 1000, "infer_1000")]
print(f"\n{lenet[0]['model']} on {lenet[0]['device']} vs torch {torch[0]['torch']} "
      f"({torch[0]['threads']} threads, {torch[0]['cpu_capability']}); {lenet[0]['cpu']}")
print(f"{'':<10}{'batch':>6}{'lenet img/s':>14}{'PyTorch img/s':>16}{'ratio':>8}   per round (lenet / PyTorch)")
for what, bs, key in rows:
    ours = [next(m["images_per_second"] for m in r["results"] if m["what"] == what and m["batch_size"] == bs) for r in lenet]
    theirs = [t[key]["median"] for t in torch]
    per = " ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(ours, theirs))
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"{what:<10}{bs:>6}{mo:>14.0f}{mt:>16.0f}{mo / mt:>7.2f}x   {per}")
PY
