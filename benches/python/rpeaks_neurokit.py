#!/usr/bin/env python3
"""R-peak detection speed and accuracy of the Python tools on MIT-BIH, for comparison
with `ecgflow eval rpeaks` and `cargo bench -p ecgflow-operators --bench rpeaks`.

Methods (each = band-pass + detector, as ecgflow's `detect` includes its own band-pass):
  nk_pantompkins1985  nk.ecg_peaks(nk.ecg_clean(x, fs, method="pantompkins1985"), fs,
                      method="pantompkins1985")
  nk_neurokit         nk.ecg_peaks(nk.ecg_clean(x, fs), fs)   (NeuroKit2's default method)
  wfdb_xqrs           wfdb.processing.xqrs_detect(x, fs)      (only with --xqrs: slow)

All 48 records, lead MLII (the first lead for 102 and 104), whole records. Records are
read before timing; the time is detection alone (clean + peaks), one thread (BLAS/OpenMP
threads are pinned to 1 below). One warm-up call on record 100 precedes each method's
timing. Scoring: beat-by-beat against the beat annotations of .atr (wfdb's `is_qrs`
symbols N L R a V F J A S E j / Q B ? ! e n f r; other annotations ignored), 150 ms,
with the same one-to-one greedy matching as PhysioNet's bxb and
`ecgflow_operators::rpeaks::match_beats`.

Usage:
  python3 benches/python/rpeaks_neurokit.py [--db DIR] [--xqrs] [--records 100,101] [--repeat N]

--repeat N times each method N passes over all records and reports the fastest pass
(best-of-N, against the noise of a shared machine; default 1; XQRS always runs once).

Prints a per-method gross line (all 48 and the 44 non-paced records) and, for scripts,
one line per method:
  RESULT method=NAME records=48 samples=N seconds=S msps=M se=.. ppv=.. f1=..
(rates as fractions in [0, 1]; msps = million samples per second).
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
           "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import neurokit2 as nk  # noqa: E402
import wfdb  # noqa: E402
import wfdb.processing  # noqa: E402
from wfdb.io.annotation import ann_label_table, is_qrs  # noqa: E402

RECORDS = [
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112",
    "113", "114", "115", "116", "117", "118", "119", "121", "122", "123", "124", "200",
    "201", "202", "203", "205", "207", "208", "209", "210", "212", "213", "214", "215",
    "217", "219", "220", "221", "222", "223", "228", "230", "231", "232", "233", "234",
]
PACED = {"102", "104", "107", "217"}
BEAT_SYMBOLS = set(
    ann_label_table[ann_label_table.label_store.isin(
        [i for i, q in enumerate(is_qrs) if q])].symbol)


def read_lead(db, record):
    """(fs, samples in mV) of lead MLII, or of the first lead when there is none."""
    rec = wfdb.rdrecord(os.path.join(db, record))
    lead = rec.sig_name.index("MLII") if "MLII" in rec.sig_name else 0
    return float(rec.fs), rec.p_signal[:, lead].astype(np.float64)


def read_reference(db, record):
    """Sample indices of the reference beat annotations."""
    ann = wfdb.rdann(os.path.join(db, record), "atr")
    return [int(s) for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS]


def match_beats(reference, detected, tolerance):
    """(tp, fp, fn): bxb's one-to-one matching, as ecgflow's `match_beats`. Of the next
    reference r and next detection d, the pair matches if |r - d| <= tolerance and the
    later one's successor is not closer to the earlier one; otherwise the earlier one is
    unmatched."""
    tp = fp = fn = 0
    i = j = 0
    while i < len(reference) and j < len(detected):
        r, d = reference[i], detected[j]
        dist = abs(r - d)
        better_ref = i + 1 < len(reference) and abs(reference[i + 1] - d) < dist
        better_det = j + 1 < len(detected) and abs(detected[j + 1] - r) < dist
        if dist <= tolerance and not (r <= d and better_ref) and not (d < r and better_det):
            tp += 1
            i += 1
            j += 1
        elif r <= d:
            fn += 1
            i += 1
        else:
            fp += 1
            j += 1
    fn += len(reference) - i
    fp += len(detected) - j
    return tp, fp, fn


def nk_pantompkins(x, fs):
    clean = nk.ecg_clean(x, sampling_rate=fs, method="pantompkins1985")
    _, info = nk.ecg_peaks(clean, sampling_rate=fs, method="pantompkins1985")
    return info["ECG_R_Peaks"]


def nk_neurokit(x, fs):
    clean = nk.ecg_clean(x, sampling_rate=fs, method="neurokit")
    _, info = nk.ecg_peaks(clean, sampling_rate=fs, method="neurokit")
    return info["ECG_R_Peaks"]


def wfdb_xqrs(x, fs):
    return wfdb.processing.xqrs_detect(sig=x, fs=fs, verbose=False)


def rates(tp, fp, fn):
    se = tp / (tp + fn) if tp + fn else float("nan")
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return se, ppv, f1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_db = os.path.join(os.environ.get("ECGFLOW_DATA", "../shared/data"), "mitdb")
    ap.add_argument("--db", default=default_db, help="MIT-BIH directory (%(default)s)")
    ap.add_argument("--records", default=",".join(RECORDS))
    ap.add_argument("--xqrs", action="store_true", help="also run wfdb XQRS (slow)")
    ap.add_argument("--tolerance-ms", type=float, default=150.0)
    ap.add_argument("--repeat", type=int, default=1, help="passes per method; fastest kept")
    args = ap.parse_args()
    records = [r for r in args.records.split(",") if r]

    data = []
    for r in records:
        fs, x = read_lead(args.db, r)
        data.append((r, fs, x, read_reference(args.db, r)))

    methods = [("nk_pantompkins1985", nk_pantompkins), ("nk_neurokit", nk_neurokit)]
    if args.xqrs:
        methods.append(("wfdb_xqrs", wfdb_xqrs))
    print(f"neurokit2 {nk.__version__}, wfdb {wfdb.__version__}, numpy {np.__version__}; "
          f"{len(data)} records from {args.db}; tolerance {args.tolerance_ms:g} ms")
    for name, fn in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(data[0][2], data[0][1])  # warm-up (imports, caches)
            passes = 1 if name == "wfdb_xqrs" else max(1, args.repeat)
            times = []
            for _ in range(passes):
                gross = np.zeros(3, dtype=np.int64)
                nonpaced = np.zeros(3, dtype=np.int64)
                seconds = 0.0
                samples = 0
                for r, fs, x, ref in data:
                    t = time.perf_counter()
                    peaks = fn(x, fs)
                    seconds += time.perf_counter() - t
                    samples += len(x)
                    counts = np.array(match_beats(
                        ref, sorted(int(p) for p in peaks), round(args.tolerance_ms / 1000 * fs)))
                    gross += counts
                    if r not in PACED:
                        nonpaced += counts
                times.append(seconds)
            seconds = min(times)
        se, ppv, f1 = rates(*gross)
        nse, nppv, nf1 = rates(*nonpaced)
        msps = samples / seconds / 1e6
        print(f"{name:<20} gross tp {gross[0]} fp {gross[1]} fn {gross[2]}  "
              f"Se {100 * se:.3f} %  +P {100 * ppv:.3f} %  F1 {100 * f1:.3f} %  | "
              f"non-paced Se {100 * nse:.3f} %  +P {100 * nppv:.3f} %  F1 {100 * nf1:.3f} %  | "
              f"{samples} samples in {seconds:.3f} s = {msps:.2f} M samples/s "
              f"(fastest of {len(times)}: {', '.join(f'{t:.3f}' for t in times)} s)")
        print(f"RESULT method={name} records={len(data)} samples={samples} "
              f"seconds={seconds:.4f} msps={msps:.4f} se={se:.6f} ppv={ppv:.6f} f1={f1:.6f}",
              flush=True)


if __name__ == "__main__":
    main()
