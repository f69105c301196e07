#!/usr/bin/env python3
"""Inference speed of an exported beat classifier with onnxruntime on one CPU thread, the
counterpart of `cargo run --release -p ecgflow-operators --example inference_speed`.

The model is the ONNX file `ecgflow export` writes (input [N, 1, L] float32, output
logits [N, classes]; the names are read from the session). The inputs are BEATS random
beats (normal, sd 0.3) of the model's input length. Per-beat latency is the mean time of
a call classifying one beat (200 calls); throughput is beats per second classifying all
BEATS beats at batch 1, 16, 64 and 256. Each figure is the best of REPEATS measurements,
after a warm-up. Softmax (numpy) is included, as in ecgflow. One thread:
intra_op_num_threads = inter_op_num_threads = 1, sequential execution, all graph
optimisations. The load average is printed before and after.

Usage:
  python3 benches/python/inference_onnxruntime.py [MODEL.onnx] [--beats 512] [--repeats 5]

Needs `pip install onnxruntime numpy` (measured with onnxruntime 1.32, numpy 2.4). Prints
a human table and, for scripts, one line per figure:
  RESULT runtime=onnxruntime batch=B beats_per_s=X ms_per_beat=Y
  RESULT runtime=onnxruntime latency_ms=Z
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

BATCHES = (1, 16, 64, 256)
LATENCY_CALLS = 200


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def best_of(repeats, f):
    f()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="models/resecanet-ds1.onnx")
    parser.add_argument("--beats", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"load average before: {load_average()}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    start = time.perf_counter()
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - start) * 1e3
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    if len(inp.shape) != 3 or inp.shape[1] != 1 or not isinstance(inp.shape[2], int):
        raise SystemExit(f"{args.model}: input {inp.name} is {inp.shape}; expected [N, 1, L]")
    length = inp.shape[2]
    print(f"model {args.model} (input {inp.name} {inp.shape}, output {out.name} {out.shape}): "
          f"onnxruntime {ort.__version__} session {load_ms:.1f} ms")
    print(f"{args.beats} random beats, best of {args.repeats}, one thread")

    rng = np.random.default_rng(3)
    inputs = (0.3 * rng.standard_normal((args.beats, 1, length))).astype(np.float32)

    def predict(x, batch):
        return [softmax(session.run([out.name], {inp.name: x[i:i + batch]})[0])
                for i in range(0, len(x), batch)]

    one = inputs[:1]

    def latency_calls():
        for _ in range(LATENCY_CALLS):
            predict(one, 1)

    latency = best_of(args.repeats, latency_calls) / LATENCY_CALLS
    print(f"onnxruntime latency, 1 beat per call: {latency * 1e3:8.3f} ms")
    print(f"RESULT runtime=onnxruntime latency_ms={latency * 1e3:.4f}")
    for batch in BATCHES:
        seconds = best_of(args.repeats, lambda: predict(inputs, batch))
        rate = args.beats / seconds
        print(f"onnxruntime batch {batch:>3}: {rate:9.0f} beats/s "
              f"({seconds * 1e3 / args.beats:.3f} ms per beat, {args.beats} beats in {seconds:.3f} s)")
        print(f"RESULT runtime=onnxruntime batch={batch} beats_per_s={rate:.1f} "
              f"ms_per_beat={seconds * 1e3 / args.beats:.4f}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
