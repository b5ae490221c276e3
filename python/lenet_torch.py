"""lenet's networks in PyTorch.

`from_config(path)` builds the `torch.nn.Module` a lenet config describes (a run's `config.toml`,
or any config with its `[model]` table written out), with the parameter names and layouts that
`lenet export --format pytorch|safetensors` writes and `lenet import` reads:

    features.{i}.conv.weight / .bias                 [out, in / groups, k...]
    features.{i}.norm.weight / .bias / .running_mean / .running_var / .num_batches_tracked
    features.{i}.subsample.coefficient / .bias       [channels]
    hidden.{j}.weight / .bias                        [out, in]
    output.weight / .bias                            [classes, in]
    output.prototypes                                [10, 84] (RBF output: fixed)

    import torch, lenet_torch
    net = lenet_torch.from_config("runs/lenet5/config.toml")
    net.load_state_dict(torch.load("lenet5.pt", weights_only=True))
    logits = net.eval()(images)   # images: [N, C, H, W], (pixel / 255 - mean) / std

A block is conv -> (batch norm) -> nonlinearity -> (pooling) -> (dropout), as in lenet; LeNet-5's
subsampling is the window's sum times a coefficient plus a bias, then the nonlinearity again.
Presets must be expanded: the `config.toml` of a run directory always is.
"""

import math
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

LECUN_TANH_OUTER = 1.7159
LECUN_TANH_INNER = 2.0 / 3.0


def activation(name):
    return {
        "relu": F.relu,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "lecun_tanh": lambda x: LECUN_TANH_OUTER * torch.tanh(LECUN_TANH_INNER * x),
        "gelu": F.gelu,
        "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
        "silu": F.silu,
        "none": lambda x: x,
    }[name]


def dims(value, n):
    return [value] * n if isinstance(value, int) else list(value)


def conv_padding(block, n, kernel, dilation):
    """[(before, after)] per dimension, as lenet resolves it."""
    p = block.get("padding", 0)
    if p == "valid":
        return [(0, 0)] * n
    if p == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in total]
    return [(v, v) for v in dims(p, n)]


class Subsample(nn.Module):
    """LeNet-5's trainable subsampling: per map, coefficient * window sum + bias."""

    def __init__(self, channels, window):
        super().__init__()
        self.coefficient = nn.Parameter(torch.full((channels,), 1.0 / window))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.window = window

    def forward(self, mean):
        shape = (1, -1) + (1,) * (mean.dim() - 2)
        return mean * (self.coefficient * self.window).view(shape) + self.bias.view(shape)


class Block(nn.Module):
    def __init__(self, cfg, in_channels, n):
        super().__init__()
        out = cfg["out_channels"]
        kernel = dims(cfg["kernel"], n)
        self.stride = dims(cfg.get("stride", 1), n)
        self.dilation = dims(cfg.get("dilation", 1), n)
        self.groups = cfg.get("groups", 1)
        self.padding = conv_padding(cfg, n, kernel, self.dilation)
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[n]
        self.conv = conv(in_channels, out, kernel, stride=self.stride, dilation=self.dilation,
                         groups=self.groups, bias=cfg.get("bias", True))
        table = cfg.get("connections")
        if table is not None:
            mask = torch.zeros(out, in_channels)
            for o, inputs in enumerate(table):
                mask[o, inputs] = 1.0
            self.register_buffer("mask", mask.view(out, in_channels, *([1] * n)), persistent=False)
        else:
            self.mask = None
        self.norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[n](out) \
            if cfg.get("batch_norm", False) else None
        self.act = activation(cfg.get("activation", "relu"))
        self.pool = cfg.get("pool")
        self.subsample = None
        if self.pool is not None:
            k = dims(self.pool["kernel"], n)
            self.pool_kernel = k
            self.pool_stride = dims(self.pool.get("stride", k), n)
            self.pool_padding = dims(self.pool.get("padding", 0), n)
            if self.pool["kind"] == "subsample":
                self.subsample = Subsample(out, math.prod(k))
        self.dropout = nn.Dropout(cfg.get("dropout", 0.0))
        self.n = n

    def forward(self, x):
        pad = [v for before_after in reversed(self.padding) for v in before_after]
        if any(pad):
            x = F.pad(x, pad)
        w = self.conv.weight if self.mask is None else self.conv.weight * self.mask
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[self.n]
        x = conv(x, w, self.conv.bias, self.stride, 0, self.dilation, self.groups)
        if self.norm is not None:
            x = self.norm(x)
        x = self.act(x)
        if self.pool is not None:
            if self.pool["kind"] == "max":
                pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[self.n]
            else:
                pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[self.n]
            x = pool(x, self.pool_kernel, self.pool_stride, self.pool_padding)
            if self.subsample is not None:
                x = self.act(self.subsample(x))
        return self.dropout(x)


class Rbf(nn.Module):
    """LeNet-5's output: minus the squared distance to each class's fixed prototype."""

    def __init__(self, classes, inputs):
        super().__init__()
        self.register_buffer("prototypes", torch.zeros(classes, inputs))

    def forward(self, x):
        w = self.prototypes
        return 2.0 * x @ w.t() - (x * x).sum(1, keepdim=True) - (w * w).sum(1)[None, :]


class LeNet(nn.Module):
    def __init__(self, model):
        super().__init__()
        if not model.get("features") and model.get("preset"):
            raise ValueError("expand the preset first: use a run directory's config.toml")
        inp = model["input"]
        n = len(inp["size"])
        channels, size = inp["channels"], list(inp["size"])
        self.features = nn.ModuleList()
        for cfg in model.get("features", []):
            self.features.append(Block(cfg, channels, n))
            channels = cfg["out_channels"]
        with torch.no_grad():
            flat = self.run_features(torch.zeros(1, inp["channels"], *size)).shape[1]
        cls = model.get("classifier", {})
        self.hidden = nn.ModuleList()
        for width in cls.get("hidden", []):
            self.hidden.append(nn.Linear(flat, width))
            flat = width
        self.act = activation(cls.get("activation", "relu"))
        self.dropout = nn.Dropout(cls.get("dropout", 0.0))
        if cls.get("output", "linear") == "rbf":
            self.output = Rbf(model["num_classes"], flat)
        else:
            self.output = nn.Linear(flat, model["num_classes"])

    def run_features(self, x):
        for block in self.features:
            x = block(x)
        return x.flatten(1)

    def forward(self, x):
        x = self.run_features(x)
        for layer in self.hidden:
            x = self.dropout(self.act(layer(x)))
        return self.output(x)


def from_config(path):
    """The module of a lenet config file (its `[model]` table)."""
    with open(path, "rb") as f:
        return LeNet(tomllib.load(f)["model"])
