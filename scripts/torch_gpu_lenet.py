#!/usr/bin/env python3
"""PyTorch's side of scripts/gpu-bench.sh: configs/lenet5-gpu.toml's recipe on a CUDA GPU.

LeNet-5 as lenet's `lenet5` preset builds it (the network of ../shared/bench/torch_lenet.py:
conv 1->6 k5 p2, ReLU, max-pool 2, conv 6->16 k5, ReLU, max-pool 2, 400-120-84-10 with ReLU),
MNIST normalised with mean 0.1307 / std 0.3081, 5,000 training images held out as lenet's
validation split does, batch 512 (the last partial batch included), Adam at 1e-2 with lenet's
one-cycle schedule (linear warm-up from lr/25 over the first 30 % of the steps, then cosine decay
to 0), 6 epochs. The whole dataset lives on the GPU and each batch is gathered there, as lenet's
resident batcher does. Printed per epoch: training seconds (synchronised), images/s, test accuracy;
and the training time until the test accuracy first reached 99 %.

    python3 scripts/torch_gpu_lenet.py --data DIR [--epochs 6] [--seed 42] [--json FILE]

DIR holds mnist/ or the four IDX .gz files themselves.
"""
import argparse
import gzip
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(d, prefix, device):
    x = read_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32)).div_(255.0).sub_(MEAN).div_(STD).unsqueeze(1)
    return x.to(device).contiguous(), torch.from_numpy(y.astype(np.int64)).to(device)


def one_cycle(total, lr):
    warm = max(total * 3 // 10, 1)
    rest = max(total - warm, 1)

    def rate(step):  # a multiplier of lr, as LambdaLR takes it
        if step < warm:
            start = lr / 25.0
            return (start + (lr - start) * step / warm) / lr
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, rest) / rest))

    return rate


def evaluate(model, x, y, bs=10000):
    model.eval()
    with torch.no_grad():
        correct = sum((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
                      for i in range(0, len(x), bs))
    model.train()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json")
    args = ap.parse_args()
    d = os.path.join(args.data, "mnist") if os.path.isdir(os.path.join(args.data, "mnist")) else args.data
    device = torch.device("cuda")
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    xtr, ytr = load_split(d, "train", device)
    xte, yte = load_split(d, "t10k", device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    keep = torch.randperm(len(xtr), generator=gen, device=device)[5000:]
    xtr, ytr = xtr[keep].contiguous(), ytr[keep].contiguous()
    torch.cuda.synchronize()
    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  train {tuple(xtr.shape)}  "
          f"load+upload {time.perf_counter() - t0:.2f}s", flush=True)
    model = lenet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    n, bs = len(xtr), args.batch
    steps = (n + bs - 1) // bs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(steps * args.epochs, args.lr))
    epochs, trained, t99 = [], 0.0, None
    for ep in range(1, args.epochs + 1):
        torch.cuda.synchronize()
        t = time.perf_counter()
        perm = torch.randperm(n, generator=gen, device=device)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            sched.step()
        torch.cuda.synchronize()
        secs = time.perf_counter() - t
        trained += secs
        acc = evaluate(model, xte, yte)
        if t99 is None and acc >= 0.99:
            t99 = trained
        print(f"epoch {ep}: train {secs:.3f}s ({n / secs:,.0f} img/s)  test {100 * acc:.2f}%", flush=True)
        epochs.append({"epoch": ep, "train_s": secs, "test_acc": acc})
    print(f"training time to 99 % test: {'%.2f s' % t99 if t99 is not None else 'not reached'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"epochs": epochs, "train_s_to_99": t99, "device": torch.cuda.get_device_name()}, f)


if __name__ == "__main__":
    main()
