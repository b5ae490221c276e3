#!/usr/bin/env bash
# How lenet's training cost grows (docs/performance.md quotes its output): `lenet bench --train`
# (random data, the real training step) for LeNet-5
#   * at batch sizes 16 to 1024,
#   * with its channels ×1, ×2, ×4 (6/16, 12/32, 24/64) at batch 64 and 256,
#   * at input sizes 28, 32 and 64 (the same layers; the dense layer grows with the maps),
# each with the arithmetic it does (multiply-adds counted from the layer shapes: forward, weight
# gradients, input gradients but the first layer's) as GFLOP/s and as a share of the machine's
# roof (the best of 5 single-precision 2048×2048 matrix products in numpy's BLAS on the same
# threads); and the peak memory (RSS) of a `lenet bench --train` process per batch size. Not part
# of CI.
#
#   scripts/scaling.sh
#
# Environment: LENET (default target/release/lenet if built, else target/debug/lenet), THREADS
# (default 2), PYTHON (a python3 with numpy for the roof, default /tmp/torchenv/bin/python3; without
# one the roof is not measured).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${THREADS:-2}"
if [ -z "${LENET:-}" ]; then
  if [ -x target/release/lenet ]; then LENET=target/release/lenet; else LENET=target/debug/lenet; fi
fi
[ -x "$LENET" ] || { echo "no lenet binary at $LENET (cargo build --workspace, or set LENET)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "no /usr/bin/time (apt-get install time)" >&2; exit 2; }
python="${PYTHON:-/tmp/torchenv/bin/python3}"
export RAYON_NUM_THREADS="$threads"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# LeNet-5 with channels (c1, c2) on size×size inputs.
network() {
  cat > "$out/$1.toml" <<EOF
[model]
name = "$1"
num_classes = 10
[model.input]
channels = 1
size = [$4, $4]
[[model.features]]
out_channels = $2
kernel = 5
padding = 2
activation = "relu"
pool = { kind = "max", kernel = 2 }
[[model.features]]
out_channels = $3
kernel = 5
activation = "relu"
pool = { kind = "max", kernel = 2 }
[model.classifier]
hidden = [120, 84]
activation = "relu"
EOF
}

echo "lenet: $LENET (RAYON_NUM_THREADS=$threads); $(date -u '+%Y-%m-%d %H:%M UTC')"
network base 6 16 28
"$LENET" bench --train --config "$out/base.toml" --batch-sizes 16,32,64,128,256,512,1024 --json \
  > "$out/batch.json"
for spec in "x2 12 32 28" "x4 24 64 28" "s32 6 16 32" "s64 6 16 64"; do
  set -- $spec
  network "$1" "$2" "$3" "$4"
  "$LENET" bench --train --config "$out/$1.toml" --batch-sizes 64,256 --json > "$out/$1.json"
done
for bs in 16 64 256 1024; do
  /usr/bin/time -f "%M" -o "$out/rss-$bs" "$LENET" bench --train --config "$out/base.toml" \
    --batch-sizes "$bs" --steps 10 > /dev/null
done

roof=""
if "$python" -c 'import numpy' 2>/dev/null; then
  roof=$(OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" "$python" -c '
import time, numpy as np
n = 2048
a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
a @ b
best = 0.0
for _ in range(5):
    t = time.perf_counter(); a @ b; best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
print(f"{best:.0f}")')
fi

python3 - "$out" "$roof" <<'PY'
import json, sys
out = sys.argv[1]
roof = float(sys.argv[2]) if sys.argv[2] else None
share = lambda gflops: f" ({100 * gflops / roof:.0f} %)" if roof else ""
print(f"\nroof: {roof:.0f} GFLOP/s (numpy sgemm 2048x2048)" if roof else "\nroof: not measured (no numpy)")

def flops(c1, c2, size):
    """FLOP of one trained image: 2 per multiply-add of the forward pass, the weight gradients
    and the input gradients (none for the first layer, whose input is the data)."""
    o1 = size                      # conv 5x5, padding 2
    p1 = o1 // 2
    o2 = p1 - 4                    # conv 5x5, no padding
    p2 = o2 // 2
    conv1 = c1 * 25 * o1 * o1
    conv2 = c2 * c1 * 25 * o2 * o2
    dense = [c2 * p2 * p2 * 120, 120 * 84, 84 * 10]
    forward = conv1 + conv2 + sum(dense)
    return 2 * (3 * forward - conv1)

def rates(path):
    return {m["batch_size"]: m["images_per_second"] for m in json.load(open(path))["results"]}

print("\nthroughput against batch size (LeNet-5, 28x28):")
base = rates(f"{out}/batch.json")
f = flops(6, 16, 28)
print(f"  {'batch':>6}{'images/s':>11}{'GFLOP/s':>9}{'peak RSS':>10}  (share of the roof)")
for bs, r in base.items():
    try:
        rss = f"{int(open(f'{out}/rss-{bs}').read().split()[-1]) / 1024:.0f} MB"
    except FileNotFoundError:
        rss = ""
    print(f"  {bs:>6}{r:>11,.0f}{r * f / 1e9:>9.1f}{rss:>10}{share(r * f / 1e9)}")
print(f"  ({f / 1e6:.2f} MFLOP per trained image)")

print("\nthroughput against width and input size (batch 64 / 256):")
print(f"  {'network':<28}{'MFLOP/image':>12}{'images/s':>20}{'GFLOP/s':>16}  (share at 256)")
rows = [("channels x1 (6, 16), 28x28", None, 6, 16, 28), ("channels x2 (12, 32), 28x28", "x2", 12, 32, 28),
        ("channels x4 (24, 64), 28x28", "x4", 24, 64, 28), ("input 32x32", "s32", 6, 16, 32),
        ("input 64x64", "s64", 6, 16, 64)]
for name, key, c1, c2, size in rows:
    r = base if key is None else rates(f"{out}/{key}.json")
    f = flops(c1, c2, size)
    ips = f"{r[64]:,.0f} / {r[256]:,.0f}"
    gf = f"{r[64] * f / 1e9:.1f} / {r[256] * f / 1e9:.1f}"
    print(f"  {name:<28}{f / 1e6:>12.2f}{ips:>20}{gf:>16}{share(r[256] * f / 1e9)}")
PY
