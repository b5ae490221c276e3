# Sourced by the compare-pytorch*.sh scripts (from the repository root): finds the lenet binary,
# a python3 with torch and the PyTorch reference, or says what is missing and exits with 2;
# makes a scratch directory `$out`, removed at exit.
#
# Environment: LENET (default target/release/lenet if built, else target/debug/lenet), PYTHON
# (a python3 with torch, default /tmp/torchenv/bin/python3), TORCH_BENCH (default
# ../shared/bench/torch_lenet.py), THREADS (default 2).
threads="${THREADS:-2}"
python="${PYTHON:-/tmp/torchenv/bin/python3}"
torch_bench="${TORCH_BENCH:-../shared/bench/torch_lenet.py}"
if [ -z "${LENET:-}" ]; then
  if [ -x target/release/lenet ]; then LENET=target/release/lenet; else LENET=target/debug/lenet; fi
fi
[ -x "$LENET" ] || { echo "no lenet binary at $LENET (cargo build --workspace, or set LENET)" >&2; exit 2; }
[ -f "$torch_bench" ] || { echo "no PyTorch benchmark at $torch_bench (set TORCH_BENCH)" >&2; exit 2; }
"$python" -c 'import torch' 2>/dev/null || {
  echo "no torch for $python: python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy (or set PYTHON)" >&2
  exit 2
}
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
