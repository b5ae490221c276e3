#!/usr/bin/env bash
# The real-GPU check of the wgpu backend, run on a lent GPU machine (see README, "GPU").
# Expects, relative to the repository root: .gl/*.deb (Vulkan/GL loaders), .gpu/lenet.xz (a
# lenet binary built here, xz-compressed) and .gpu/data/mnist/ (the four MNIST files).
# Writes its report under $OUT (or ./gpu-out).
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export XDG_RUNTIME_DIR=/tmp
xz -dc .gpu/lenet.xz > /tmp/lenet && chmod +x /tmp/lenet
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
/tmp/lenet --version
SECONDS=0
/tmp/lenet train --config configs/lenet5-wgpu.toml --epochs 2 --plain --offline \
  --data-dir .gpu/data --run-dir "$out/run" 2>&1 | tee "$out/train.log"
echo "train wall seconds: $SECONDS" | tee -a "$out/train.log"
/tmp/lenet eval --checkpoint "$out/run" --offline --data-dir .gpu/data --json --output "$out/eval.json" > /dev/null 2> "$out/eval.err"
echo "eval exit: $?"; cat "$out/eval.err"
cp "$out/run/summary.json" "$out/run/metrics.csv" "$out/" 2>/dev/null
rm -rf "$out/run"
cat "$out/summary.json"
