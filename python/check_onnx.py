#!/usr/bin/env python3
"""Checks an ONNX model lenet exported against lenet's own outputs, with the real clients.

    python check_onnx.py MODEL.onnx INPUTS.f32 OUTPUTS.f32 --shape N,C,H,W [--tolerance 1e-4]

INPUTS.f32 and OUTPUTS.f32 are raw little-endian float32: the network inputs lenet used and the
outputs (logits or RBF scores, [N, classes]) it computed. The script runs the ONNX checker (full
check, with shape inference), then ONNX Runtime on all N inputs at once and on the first one
alone (the batch axis is dynamic), and prints one JSON line:

    {"images": N, "equal_predictions": N, "max_abs_difference": 3e-07, "output": "logits", ...}

It exits 1 when a prediction differs or an output is off by more than the tolerance.
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("inputs")
    p.add_argument("outputs")
    p.add_argument("--shape", required=True, help="N,C,H,W (or N,C,L) of the inputs")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    metadata = {e.key: e.value for e in model.metadata_props}

    shape = [int(d) for d in args.shape.split(",")]
    x = np.fromfile(args.inputs, dtype="<f4").reshape(shape)
    expected = np.fromfile(args.outputs, dtype="<f4").reshape(shape[0], -1)

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    [inp] = session.get_inputs()
    [out] = session.get_outputs()
    got = session.run([out.name], {inp.name: x})[0]
    one = session.run([out.name], {inp.name: x[:1]})[0]

    equal = int((got.argmax(1) == expected.argmax(1)).sum())
    diff = float(np.abs(got - expected).max())
    diff_one = float(np.abs(one[0] - expected[0]).max())
    report = {
        "images": shape[0],
        "equal_predictions": equal,
        "max_abs_difference": diff,
        "max_abs_difference_batch_of_one": diff_one,
        "input": {"name": inp.name, "shape": [str(d) for d in inp.shape], "type": inp.type},
        "output": out.name,
        "opset": [o.version for o in model.opset_import],
        "metadata": metadata,
        "onnxruntime": ort.__version__,
    }
    print(json.dumps(report))
    ok = equal == shape[0] and diff <= args.tolerance and diff_one <= args.tolerance
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
