#!/usr/bin/env bash
# The GPU measurement, one prepared script for a lent GPU machine (docs/backends.md, "A real
# GPU"), testable without a GPU on lavapipe (Mesa's software Vulkan device):
#
#   for each backend it has a binary for (wgpu; cuda from a `--features cuda` build), two runs of
#   the same `lenet train` command: the first with an empty kernel cache (CubeCL compiles and
#   autotunes every kernel on first use), the second with the cache the first one wrote. Their
#   difference is the kernel compilation, reported apart from the training. Then a third, short
#   run with the warm cache (EPOCHS99 epochs, default 3): the time to 99 % test accuracy. Printed
#   and saved under $OUT: per-epoch training seconds and images/s, validation and test accuracy,
#   and the wall time of each run. First of all, where python3 has PyTorch with CUDA, PyTorch's
#   side of the same recipe (scripts/torch_gpu_lenet.py), for the side-by-side.
#
# The training set lives on the device for the whole run (one upload; each batch is gathered
# there: `ImageBatcher::resident`), as every GPU run of `lenet train` does.
#
#   scripts/gpu-bench.sh                (from the repository root)
#
# Environment:
#   LENET       the lenet binary (default: .gpu/lenet.xz unpacked, else target/debug/lenet)
#   LENET_CUDA  a binary built with --features cuda (default: .gpu/lenet-cuda.xz if present)
#   BACKENDS    which to run (default: wgpu, and cuda when there is a cuda binary)
#   DATA        the folder holding mnist/ (default: .gpu/data, else $LENET_DATA_DIR, else
#               ../shared/data)
#   CONFIG      the recipe (default configs/lenet5-gpu.toml)
#   EXTRA       more arguments for `lenet train` (on lavapipe: "--epochs 1 --limit-train 2048
#               --limit-valid 512 --limit-test 512")
#   EPOCHS99    epochs of the short run (default 3)
#   RUN_TIMEOUT seconds each run may take before it is stopped (default 240)
#   OUT         where the report goes (default gpu-out)
#
# On the lent machine, .gl/*.deb (the Vulkan loader) are unpacked first where present, and the
# NVIDIA Vulkan driver is used where the machine has one.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
out="$(realpath -m "${OUT:-gpu-out}")"
mkdir -p "$out"
if compgen -G ".gl/*.deb" > /dev/null; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# CUDA: NVRTC compiles the kernels and needs the toolkit's headers (CUDA_PATH) and its library.
if [ -z "${CUDA_PATH:-}" ] && command -v nvcc > /dev/null; then
  CUDA_PATH="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
  export CUDA_PATH
fi
for lib in "${CUDA_PATH:-/usr/local/cuda}"/lib64 "${CUDA_PATH:-/usr/local/cuda}"/targets/x86_64-linux/lib; do
  [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done

unpack() { xz -dc "$1" > "$2" && chmod +x "$2" && echo "$2"; }
lenet="${LENET:-}"
if [ -z "$lenet" ]; then
  if [ -f .gpu/lenet.xz ]; then lenet="$(unpack .gpu/lenet.xz /tmp/lenet-gpu)"; else lenet="$root/target/debug/lenet"; fi
fi
lenet_cuda="${LENET_CUDA:-}"
if [ -z "$lenet_cuda" ] && [ -f .gpu/lenet-cuda.xz ]; then lenet_cuda="$(unpack .gpu/lenet-cuda.xz /tmp/lenet-cuda)"; fi
backends="${BACKENDS:-wgpu${lenet_cuda:+ cuda}}"
data="${DATA:-}"
if [ -z "$data" ]; then
  if [ -d .gpu/data ]; then data=.gpu/data; else data="${LENET_DATA_DIR:-../shared/data}"; fi
fi
data="$(realpath "$data")"
config="$(realpath "${CONFIG:-configs/lenet5-gpu.toml}")"
[ -x "$lenet" ] || { echo "no lenet binary at $lenet (set LENET)" >&2; exit 2; }
[ -f "$data/mnist/train-images-idx3-ubyte.gz" ] || { echo "no MNIST under $data (set DATA)" >&2; exit 2; }

nvidia-smi -L > "$out/gpu.txt" 2>&1 || echo "no nvidia-smi" > "$out/gpu.txt"
cat "$out/gpu.txt"
"$lenet" --version | tee "$out/version.txt"
"$lenet" devices 2>&1 | tee "$out/devices.txt"

status=0
if python3 -c 'import torch; assert torch.cuda.is_available()' 2> /dev/null; then
  echo "== PyTorch, the same recipe"
  timeout "${RUN_TIMEOUT:-240}" python3 scripts/torch_gpu_lenet.py --data "$data" \
    --json "$out/torch.json" 2>&1 | tee "$out/torch.log"
fi
for backend in $backends; do
  bin="$lenet"
  [ "$backend" = cuda ] && bin="$lenet_cuda"
  # CubeCL reads cubecl.toml from the working directory: compiled kernels and autotune results
  # go to a cache of this backend's own, emptied before the first (cold) run.
  work="$out/$backend"
  rm -rf "$work"
  mkdir -p "$work/cache"
  cat > "$work/cubecl.toml" <<EOF
[compilation]
cache = true

[environment]
path = { directory = "$work/cache" }
EOF
  for run in cold warm short; do
    echo "== $backend, $run"
    epochs=()
    [ "$run" = short ] && epochs=(--epochs "${EPOCHS99:-3}")
    date +%s.%N > "$work/$run.wall"
    # shellcheck disable=SC2086 # EXTRA is a list of arguments
    (cd "$work" && timeout "${RUN_TIMEOUT:-240}" "$bin" train --config "$config" --backend "$backend" \
      --plain --offline --data-dir "$data" --run-dir "$work/run-$run" "${epochs[@]}" ${EXTRA:-}) \
      > "$work/$run.log" 2>&1
    rc=$?
    date +%s.%N >> "$work/$run.wall"
    tail -n 3 "$work/$run.log"
    if [ "$rc" != 0 ]; then echo "lenet train failed ($rc): $work/$run.log"; status=1; continue; fi
    cp "$work/run-$run/summary.json" "$work/$run-summary.json"
    cp "$work/run-$run/metrics.csv" "$work/$run-metrics.csv"
    rm -rf "$work/run-$run"
  done
  du -sh "$work/cache" | tee "$work/cache-size.txt"
done

python3 - "$out" $backends <<'PY'
import csv, json, os, sys
out, backends = sys.argv[1], sys.argv[2:]
print("\nbackend  run   wall s  epochs (training s each)                 images/s (last epoch)  valid    test")
for b in backends:
    walls = {}
    for run in ["cold", "warm", "short"]:
        try:
            s = json.load(open(f"{out}/{b}/{run}-summary.json"))
            rows = list(csv.DictReader(open(f"{out}/{b}/{run}-metrics.csv")))
        except OSError:
            print(f"{b:<8} {run:<5} (failed)")
            continue
        start, end = map(float, open(f"{out}/{b}/{run}.wall").read().split())
        walls[run] = end - start
        train = [r for r in rows if r["split"] == "train"]
        secs = " ".join(f"{float(r['seconds']):.2f}" for r in train)
        print(f"{b:<8} {run:<5} {walls[run]:7.1f}  {secs:<40} {float(train[-1]['images_per_second']):>12,.0f}  "
              f"{100 * s['valid_accuracy']:6.2f} % {100 * s['test_accuracy']:6.2f} %")
    if "cold" in walls and "warm" in walls:
        print(f"{b:<8} kernel compilation and autotuning (cold - warm wall): {walls['cold'] - walls['warm']:.1f} s")
try:
    t = json.load(open(f"{out}/torch.json"))
    secs = " ".join(f"{e['train_s']:.2f}" for e in t["epochs"])
    last = t["epochs"][-1]
    t99 = t["train_s_to_99"]
    print(f"pytorch  cuda   {'':>6}  {secs:<40} {(55000 / last['train_s']):>12,.0f}  {'':>8} "
          f"{100 * last['test_acc']:6.2f} %  (training time to 99 %: {'%.2f s' % t99 if t99 else 'not reached'})")
except OSError:
    print("pytorch  (not run: no PyTorch with CUDA here)")
PY
exit "$status"
