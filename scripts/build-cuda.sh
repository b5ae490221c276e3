#!/usr/bin/env bash
# Builds a `lenet` binary with the CUDA backend on a machine that cannot reach the internet.
#
# Burn 0.22's CUDA runtime (cubecl-cuda 0.11) compiles kernels with NVRTC (CUDA C++, what lenet
# selects: lenet-train's `cuda` feature turns on cubecl-cuda's `cpp`) or through LLVM, and it
# always links cubecl-llvm, whose build script downloads an LLVM bundle. This script builds in a
# copy of the workspace where cubecl-llvm is replaced ([patch.crates-io]) by
# tools/cubecl-llvm-nvrtc: the types cubecl-cuda names, no LLVM; its compiler is never selected,
# and using it would be an error. Everything else is the published crates. On a machine with
# internet access `cargo build --release --features lenet-cli/cuda` is enough.
#
#   scripts/build-cuda.sh [OUT]     (default OUT: target/lenet-cuda)
#
# It overwrites target/release/lenet (the build shares the target directory to reuse the
# compiled dependencies). The CUDA toolkit is not needed to build; to run, the machine needs the NVIDIA driver and NVRTC
# (libnvrtc.so, and the toolkit's headers: CUDA_PATH, else /usr/local/cuda). Measured on an H200:
# docs/backends.md, "A real GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
out="$(realpath -m "${1:-target/lenet-cuda}")"
# Stable paths under target/, so that a second build reuses the first one's work.
work="$root/target/cuda-build/workspace"
stub="$root/target/cuda-build/cubecl-llvm-nvrtc"
rm -rf "$work" "$stub"
mkdir -p "$work"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
cp -r tools/cubecl-llvm-nvrtc "$stub"
printf '\n[patch.crates-io]\ncubecl-llvm = { path = "%s" }\n' "$stub" >> "$work/Cargo.toml"
(cd "$work" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" \
  cargo build --release --workspace --features lenet-cli/cuda)
cp "${CARGO_TARGET_DIR:-$root/target}/release/lenet" "$out"
echo "$out"
