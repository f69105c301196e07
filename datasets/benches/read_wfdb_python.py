#!/usr/bin/env python3
"""The wfdb-python side of the MIT-BIH reading benchmark (see benches/read.rs).

Reads all 48 MIT-BIH records (both signals) with wfdb.rdrecord and reports the time
and samples per second. Variants (--variant, default `physical`):

  physical     physical=True             float64 p_signal (rdrecord's default)
  physical32   physical=True,  return_res=32   float32 p_signal
  digital      physical=False            int64 d_signal
  digital16    physical=False, return_res=16   int16 d_signal (ADC units, no conversion)
  all          each of the above in turn

Usage: python3 read_wfdb_python.py [--variant V] [--repeat N] [DATA_DIR/mitdb]
  default directory: $ECGFLOW_DATA/mitdb, else ../../../shared/data/mitdb beside
  this file.

Prints one line per run:  run <k> samples <n> seconds <s> samples_per_s <r>
(prefixed with `<variant> ` under --variant all), then for each variant
  best <variant> <units> samples <n> seconds <s> samples_per_s <r>
and, for a single variant, finally:
  median seconds <s> samples_per_s <r>
"""
import os
import statistics
import sys
import time

import wfdb

HERE = os.path.dirname(os.path.abspath(__file__))

VARIANTS = {
    "physical": ("physical-f64", dict(physical=True)),
    "physical32": ("physical-f32", dict(physical=True, return_res=32)),
    "digital": ("adc-i64", dict(physical=False)),
    "digital16": ("adc-i16", dict(physical=False, return_res=16)),
}


def run(mitdb, records, variant, repeat, prefix):
    units, kw = VARIANTS[variant]
    times = []
    samples = 0
    for k in range(repeat):
        t = time.perf_counter()
        samples = 0
        for r in records:
            rec = wfdb.rdrecord(os.path.join(mitdb, r), **kw)
            samples += (rec.p_signal if kw["physical"] else rec.d_signal).size
        dt = time.perf_counter() - t
        times.append(dt)
        print(f"{prefix}run {k + 1} samples {samples} seconds {dt:.4f} samples_per_s {samples / dt:.1f}",
              flush=True)
    best = min(times)
    print(f"best {variant} {units} samples {samples} seconds {best:.4f} samples_per_s {samples / best:.1f}",
          flush=True)
    return samples, times


def main():
    args = sys.argv[1:]
    repeat = 1
    variant = "physical"
    while args[:1] in (["--repeat"], ["--variant"]):
        if args[0] == "--repeat":
            repeat = int(args[1])
        else:
            variant = args[1]
        args = args[2:]
    if variant != "all" and variant not in VARIANTS:
        sys.exit(f"unknown variant {variant!r} (one of: all, {', '.join(VARIANTS)})")
    if args:
        mitdb = args[0]
    else:
        base = os.environ.get("ECGFLOW_DATA", os.path.join(HERE, "../../../shared/data"))
        mitdb = os.path.join(base, "mitdb")
    with open(os.path.join(mitdb, "RECORDS")) as f:
        records = [r.strip() for r in f if r.strip()]
    assert len(records) == 48, len(records)
    if variant == "all":
        for v in VARIANTS:
            run(mitdb, records, v, repeat, f"{v} ")
    else:
        samples, times = run(mitdb, records, variant, repeat, "")
        med = statistics.median(times)
        print(f"median seconds {med:.4f} samples_per_s {samples / med:.1f}", flush=True)


if __name__ == "__main__":
    main()
