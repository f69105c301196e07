#!/usr/bin/env python3
"""The wfdb-python side of the MIT-BIH reading benchmark (see benches/read.rs).

Reads all 48 MIT-BIH records (both signals, physical units: wfdb.rdrecord with
physical=True, float64 p_signal) and reports the time and samples per second.

Usage: python3 read_wfdb_python.py [--repeat N] [DATA_DIR/mitdb]
  default directory: $ECGFLOW_DATA/mitdb, else ../../../shared/data/mitdb beside
  this file.

Prints one line per run:  run <k> samples <n> seconds <s> samples_per_s <r>
and finally:              median seconds <s> samples_per_s <r>
"""
import os
import statistics
import sys
import time

import wfdb

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    args = sys.argv[1:]
    repeat = 1
    if args[:1] == ["--repeat"]:
        repeat = int(args[1])
        args = args[2:]
    if args:
        mitdb = args[0]
    else:
        base = os.environ.get("ECGFLOW_DATA", os.path.join(HERE, "../../../shared/data"))
        mitdb = os.path.join(base, "mitdb")
    with open(os.path.join(mitdb, "RECORDS")) as f:
        records = [r.strip() for r in f if r.strip()]
    assert len(records) == 48, len(records)
    times = []
    for k in range(repeat):
        t = time.perf_counter()
        samples = 0
        for r in records:
            rec = wfdb.rdrecord(os.path.join(mitdb, r), physical=True)
            samples += rec.p_signal.size
        dt = time.perf_counter() - t
        times.append(dt)
        print(f"run {k + 1} samples {samples} seconds {dt:.4f} samples_per_s {samples / dt:.1f}",
              flush=True)
    med = statistics.median(times)
    print(f"median seconds {med:.4f} samples_per_s {samples / med:.1f}", flush=True)


if __name__ == "__main__":
    main()
