#!/usr/bin/env python3
"""The beat-extraction path as people write it with NeuroKit2, for comparison with
`ecgflow run pipelines/mitdb-detect-beats.toml`:

  for each of the 48 MIT-BIH records:
      wfdb.rdrecord                      (read; lead MLII, the first lead for 102 and 104)
      nk.ecg_clean(x, fs)                (NeuroKit2's default cleaning: 0.5 Hz high-pass
                                          + 50 Hz powerline filter)
      nk.ecg_peaks(clean, fs)            (default `neurokit` detector)
      windows of 259 samples, 90 before and 168 after each R peak (beats without a full
      window dropped), each z-scored (mean 0, standard deviation 1)

The time covers all of that, reading included, from the first read to the last window
(after `import neurokit2`, whose import time is printed apart). One thread (BLAS/OpenMP
pinned to 1). `--method pantompkins1985` uses that method for both clean and peaks.

Usage:
  python3 benches/python/extraction_neurokit.py [--db DIR] [--method neurokit|pantompkins1985]

Prints a human line and, for scripts:
  RESULT script=extraction method=NAME records=48 samples=N beats=B seconds=S msps=M
(samples = samples of the lead used; msps = million samples per second).
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
           "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

t_import = time.perf_counter()
import numpy as np  # noqa: E402
import neurokit2 as nk  # noqa: E402
import wfdb  # noqa: E402
t_import = time.perf_counter() - t_import

RECORDS = [
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112",
    "113", "114", "115", "116", "117", "118", "119", "121", "122", "123", "124", "200",
    "201", "202", "203", "205", "207", "208", "209", "210", "212", "213", "214", "215",
    "217", "219", "220", "221", "222", "223", "228", "230", "231", "232", "233", "234",
]
BEFORE, AFTER = 90, 168  # 259 samples per beat, the R peak at index 90


def extract(db, record, method):
    """z-scored 259-sample beats of one record, shape (beats, 259), and its length."""
    rec = wfdb.rdrecord(os.path.join(db, record))
    lead = rec.sig_name.index("MLII") if "MLII" in rec.sig_name else 0
    x = rec.p_signal[:, lead]
    fs = rec.fs
    clean = nk.ecg_clean(x, sampling_rate=fs, method=method)
    _, info = nk.ecg_peaks(clean, sampling_rate=fs, method=method)
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    peaks = peaks[(peaks >= BEFORE) & (peaks + AFTER < len(clean))]
    beats = np.stack([clean[p - BEFORE:p + AFTER + 1] for p in peaks]) if len(peaks) else \
        np.empty((0, BEFORE + AFTER + 1))
    mean = beats.mean(axis=1, keepdims=True)
    std = beats.std(axis=1, keepdims=True)
    std[std == 0] = 1.0
    return (beats - mean) / std, len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_db = os.path.join(os.environ.get("ECGFLOW_DATA", "../shared/data"), "mitdb")
    ap.add_argument("--db", default=default_db, help="MIT-BIH directory (%(default)s)")
    ap.add_argument("--method", default="neurokit", choices=["neurokit", "pantompkins1985"])
    args = ap.parse_args()

    samples = beats = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        for r in RECORDS:
            b, n = extract(args.db, r, args.method)
            beats += len(b)
            samples += n
        seconds = time.perf_counter() - t
    msps = samples / seconds / 1e6
    print(f"NeuroKit2 {nk.__version__} extraction ({args.method}), {len(RECORDS)} records: "
          f"{beats} beats, {samples} samples in {seconds:.3f} s = {msps:.2f} M samples/s "
          f"(reading included; imports {t_import:.2f} s not included)")
    print(f"RESULT script=extraction method={args.method} records={len(RECORDS)} "
          f"samples={samples} beats={beats} seconds={seconds:.4f} msps={msps:.4f}", flush=True)


if __name__ == "__main__":
    main()
