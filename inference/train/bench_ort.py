"""onnxruntime side of the inference benchmark (the Rust side is `mini-xdr bench inference`).

    .venv/bin/python bench_ort.py [--iterations 2000]

Same model file, same batch: the golden inputs repeated to 64 rows; single = first row.
One intra-op thread, as the detector gives tract one blocking thread per call.
Timing wraps `session.run` only (input arrays are built beforehand), like the Rust side.
"""

import argparse
import json
import pathlib
import time

import numpy as np
import onnxruntime as ort

MODELS = pathlib.Path(__file__).resolve().parent.parent / "models"


def measure(sess, x, iterations):
    for _ in range(min(iterations, 20)):
        sess.run(["probabilities"], {"features": x})
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        sess.run(["probabilities"], {"features": x})
        times.append(time.perf_counter() - t)
    times.sort()
    pct = lambda q: times[max(1, min(len(times), int(np.ceil(q * len(times))))) - 1]
    return pct(0.5), pct(0.99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=1000)
    args = ap.parse_args()
    golden = json.loads((MODELS / "classifier.golden.json").read_text())
    rows = np.asarray(golden["inputs"], dtype=np.float32)
    batch = np.resize(rows, (64, rows.shape[1])).astype(np.float32)  # cycles rows like the Rust side
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(MODELS / "classifier.onnx"), opts, providers=["CPUExecutionProvider"])
    for name, x in (("single", batch[:1].copy()), ("batch64", batch)):
        p50, p99 = measure(sess, x, args.iterations)
        print(f"onnxruntime {ort.__version__} {name:<8} p50 {p50 * 1e6:8.2f} µs  p99 {p99 * 1e6:8.2f} µs  "
              f"per window p50 {p50 * 1e6 / len(x):7.3f} µs  ({args.iterations} runs)")


if __name__ == "__main__":
    main()
