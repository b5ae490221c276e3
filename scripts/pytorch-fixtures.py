#!/usr/bin/env python3
"""PyTorch fixtures for `lenet import`, and the round trips that need PyTorch, run by hand.

PyTorch is too large for CI (the PyPI wheel pulls ~5 GB), so this script is run once, in a
virtual environment outside the repository, and its small outputs are committed:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy safetensors
    /tmp/torchenv/bin/python scripts/pytorch-fixtures.py make --data ../shared/data/mnist

writes crates/lenet-cli/tests/fixtures/pytorch/:
  lenet5-sequential.pt       a LeNet-5 `nn.Sequential` state_dict (keys 0.weight ... 11.bias),
                             float32, trained for one epoch on MNIST (Adam 1e-3, batch 64, seed 0)
  lenet5-checkpoint-bf16.pt  the same weights in bfloat16, nested in a checkpoint as
                             {"epoch": 1, "model": ..., "ema_decay": tensor(0.999)}
  lenet5-named-f16.safetensors  the same weights in float16, named conv1/conv2/fc1/fc2/fc3
  expected.json              for each file: PyTorch's correct count on the 10,000 test images and
                             its logits for the first 100, computed from the weights as stored
                             (bf16/f16 values widened to float32)

The tests (crates/lenet-cli/tests/exchange.rs) import each file and must reproduce the correct
count exactly and the logits within 1e-4.

    /tmp/torchenv/bin/python scripts/pytorch-fixtures.py check-export --lenet target/release/lenet \\
        --data ../shared/data/mnist

checks the other direction: imports the fixture with `lenet import`, exports it with
`lenet export --format pytorch` and `--format safetensors`, loads both with `torch.load` /
`safetensors.torch.load_file` into `python/lenet_torch.py`'s module, and compares the logits with
PyTorch's own; then trains a small lenet model, exports it, and compares PyTorch's test correct
count with `lenet eval`'s.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "crates", "lenet-cli", "tests", "fixtures", "pytorch")
sys.path.insert(0, os.path.join(ROOT, "python"))
MEAN, STD = 0.1307, 0.3081


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(data_dir, split):
    x = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32)).div_(255.0).sub_(MEAN).div_(STD).unsqueeze(1)
    return x, torch.from_numpy(y.astype(np.int64))


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


@torch.no_grad()
def correct_and_logits(model, x, y):
    model.eval()
    logits = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    return int((logits.argmax(1) == y).sum()), logits


def widened(state, dtype):
    return {k: v.to(dtype).to(torch.float32) for k, v in state.items()}


def make(args):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    model = lenet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    order = torch.randperm(len(xtr))
    for i in range(0, len(xtr), 64):
        idx = order[i:i + 64]
        opt.zero_grad()
        F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    os.makedirs(FIXTURES, exist_ok=True)
    expected = {}

    torch.save(state, os.path.join(FIXTURES, "lenet5-sequential.pt"))
    correct, logits = correct_and_logits(model, xte, yte)
    expected["lenet5-sequential.pt"] = {"test_correct": correct, "logits": logits[:100].tolist()}

    bf16 = {k: v.to(torch.bfloat16) for k, v in state.items()}
    # A checkpoint: the state_dict nested under "model", beside a step count and a tensor that
    # is not part of the network.
    torch.save({"epoch": 1, "model": bf16, "ema_decay": torch.tensor(0.999)},
               os.path.join(FIXTURES, "lenet5-checkpoint-bf16.pt"))
    model.load_state_dict(widened(state, torch.bfloat16))
    correct, logits = correct_and_logits(model, xte, yte)
    expected["lenet5-checkpoint-bf16.pt"] = {"test_correct": correct, "logits": logits[:100].tolist()}

    from safetensors.torch import save_file
    names = {"0": "conv1", "3": "conv2", "7": "fc1", "9": "fc2", "11": "fc3"}
    named = {f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v.to(torch.float16).contiguous()
             for k, v in state.items()}
    save_file(named, os.path.join(FIXTURES, "lenet5-named-f16.safetensors"))
    model.load_state_dict(widened(state, torch.float16))
    correct, logits = correct_and_logits(model, xte, yte)
    expected["lenet5-named-f16.safetensors"] = {"test_correct": correct, "logits": logits[:100].tolist()}

    with open(os.path.join(FIXTURES, "expected.json"), "w") as f:
        json.dump({"test_images": len(xte), "files": expected}, f)
    for name, e in expected.items():
        print(f"{name}: {e['test_correct']} / {len(xte)} correct")


def lenet(args, *rest):
    cmd = [args.lenet, *rest]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return out.stdout


def check_export(args):
    import lenet_torch
    from safetensors.torch import load_file
    xte, yte = load(args.data, "t10k")
    with open(os.path.join(FIXTURES, "expected.json")) as f:
        expected = json.load(f)["files"]["lenet5-sequential.pt"]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "imported")
        lenet(args, "import", "--from", os.path.join(FIXTURES, "lenet5-sequential.pt"),
              "--preset", "lenet5", "--run-dir", run, "--quiet")
        net = lenet_torch.from_config(os.path.join(run, "config.toml"))
        for fmt, ext, read in [("pytorch", "pt", lambda p: torch.load(p, weights_only=True)),
                               ("safetensors", "safetensors", load_file)]:
            out = os.path.join(tmp, f"model.{ext}")
            lenet(args, "export", "--checkpoint", run, "--format", fmt, "--out", out, "--quiet")
            net.load_state_dict(read(out))
            correct, logits = correct_and_logits(net, xte, yte)
            diff = (logits[:100] - torch.tensor(expected["logits"])).abs().max().item()
            print(f"torch -> lenet -> {fmt} -> torch: {correct} correct (PyTorch: "
                  f"{expected['test_correct']}), max logit difference {diff:.2e}")
            ok &= correct == expected["test_correct"] and diff <= 1e-4

        # A network lenet trained itself (mnist-best: batch norm, dropout), as PyTorch sees it.
        run = os.path.join(tmp, "trained")
        lenet(args, "train", "--config", os.path.join(ROOT, "configs", "mnist-best.toml"),
              "--epochs", "1", "--limit-train", "5000", "--run-dir", run, "--quiet",
              "--data-dir", os.path.dirname(args.data))
        evaluation = json.loads(lenet(args, "eval", "--checkpoint", run, "--json",
                                      "--data-dir", os.path.dirname(args.data)))
        out = os.path.join(tmp, "trained.pt")
        lenet(args, "export", "--checkpoint", run, "--format", "pytorch", "--out", out, "--quiet")
        net = lenet_torch.from_config(os.path.join(run, "config.toml"))
        net.load_state_dict(torch.load(out, weights_only=True))
        correct, _ = correct_and_logits(net, xte, yte)
        print(f"lenet -> pytorch -> torch: {correct} correct (lenet eval: {evaluation['correct']})")
        ok &= correct == evaluation["correct"]
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--data", required=True, help="the MNIST directory (the four .gz files)")
    c = sub.add_parser("check-export")
    c.add_argument("--data", required=True)
    c.add_argument("--lenet", default=os.path.join(ROOT, "target", "release", "lenet"))
    args = p.parse_args()
    {"make": make, "check-export": check_export}[args.command](args)


if __name__ == "__main__":
    main()
