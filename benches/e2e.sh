#!/usr/bin/env bash
# End-to-end benchmark: ecgflow against the Python tools, on this machine, in one go.
#
#   benches/e2e.sh            (from the workspace root, after `cargo build --release -p ecgflow`
#                              and `pip install neurokit2 wfdb`)
#
# Environment: ECGFLOW_BIN (default target/release/ecgflow), ECGFLOW_DATA (default
# ../shared/data; MIT-BIH in $ECGFLOW_DATA/mitdb), PYTHON (default python3), RUNS (default 3),
# METHODS (ecgflow detectors, default "pan_tompkins hamilton_tompkins"; add e.g. consensus),
# XQRS=1 to add wfdb-python's XQRS to the detection comparison (slow: over a minute).
#
# It measures:
#  1. the whole beat-extraction path, pipelines/mitdb-detect-beats.toml (read WFDB →
#     band-pass → Pan-Tompkins → 259-sample windows → z-score → null sink), with
#     --workers 1 and --workers 2, RUNS times each; the median of the engine's own
#     "done: ... in X s" line, and the median wall time of the process;
#  2. R-peak detection alone: `ecgflow eval rpeaks` for pan_tompkins and hamilton_tompkins
#     (gross F1, and detection seconds: band-pass + detector over records in memory, 1 thread),
#     RUNS times each, the fastest kept;
#  3. benches/python/rpeaks_neurokit.py --repeat RUNS (NeuroKit2 pantompkins1985 and
#     neurokit: F1 and detection seconds, 1 thread, the fastest pass kept) and
#     benches/python/extraction_neurokit.py (NeuroKit2's extraction script, reading
#     included) RUNS times, the median kept;
# then prints a summary with the ratios, and `uptime` before and after (the load matters
# on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${ECGFLOW_BIN:-target/release/ecgflow}
export ECGFLOW_DATA=${ECGFLOW_DATA:-../shared/data}
PY=${PYTHON:-python3}
RUNS=${RUNS:-3}
METHODS=${METHODS:-pan_tompkins hamilton_tompkins}
PIPE=pipelines/mitdb-detect-beats.toml
OUT=$(mktemp -d "${TMPDIR:-/tmp}/ecgflow-e2e.XXXXXX")

echo "ecgflow e2e benchmark; results in $OUT"
echo "load before: $(uptime)"
echo "cpus: $(nproc); binary: $BIN; data: $ECGFLOW_DATA/mitdb"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# Median (or, for `best`, minimum) of the numbers on stdin, one a line; empty if none.
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
best() { sort -g | head -1; }

# 1. Whole extraction path through the engine.
pipeline_ok=1
if ! "$BIN" validate "$PIPE" >"$OUT/validate.txt" 2>&1; then
    pipeline_ok=0
    echo "SKIPPED ecgflow run: $PIPE does not validate with $BIN:"
    cat "$OUT/validate.txt"
fi
for w in 1 2; do
    : >"$OUT/run_w$w.engine"; : >"$OUT/run_w$w.wall"
    [ "$pipeline_ok" = 1 ] || continue
    for i in $(seq "$RUNS"); do
        t0=$(date +%s.%N)
        "$BIN" run "$PIPE" --quiet --workers "$w" 2>"$OUT/run_w${w}_$i.err" >/dev/null
        t1=$(date +%s.%N)
        line=$(grep '^done:' "$OUT/run_w${w}_$i.err" | tail -1)
        echo "workers $w run $i: $line (wall $(echo "$t1 - $t0" | bc) s)"
        echo "$line" | sed -E 's/.* in ([0-9.]+) s.*/\1/' >>"$OUT/run_w$w.engine"
        echo "$t1 - $t0" | bc >>"$OUT/run_w$w.wall"
    done
done
grep -h '^done:' "$OUT"/run_w1_1.err 2>/dev/null | sed -E 's/^done: [0-9]+ streams, ([0-9]+) samples.*/\1/' >"$OUT/run.samples" || true

# 2. Detection alone, ecgflow.
for m in $METHODS; do
    for i in $(seq "$RUNS"); do
        "$BIN" eval rpeaks --db "$ECGFLOW_DATA/mitdb" --method "$m" --json "$OUT/eval_${m}_$i.json" \
            >"$OUT/eval_$m.txt" 2>&1
        grep -E 'detection' "$OUT/eval_$m.txt" | sed "s/^/$m run $i: /"
    done
    grep -E '^gross' "$OUT/eval_$m.txt" | sed "s/^/$m: /"
done

# 3. Python.
xqrs=(); [ "${XQRS:-0}" = 1 ] && xqrs=(--xqrs)
"$PY" benches/python/rpeaks_neurokit.py --repeat "$RUNS" ${xqrs[@]+"${xqrs[@]}"} | tee "$OUT/py_rpeaks.txt"
for i in $(seq "$RUNS"); do
    "$PY" benches/python/extraction_neurokit.py | tee "$OUT/py_extraction_$i.txt"
done
echo "load after: $(uptime)"

# Summary.
METHODS="$METHODS" "$PY" - "$OUT" "$(median <"$OUT/run_w1.engine")" "$(median <"$OUT/run_w1.wall")" \
    "$(median <"$OUT/run_w2.engine")" "$(median <"$OUT/run_w2.wall")" "$(cat "$OUT/run.samples" 2>/dev/null)" <<'EOF'
import json, sys
out, e1, w1, e2, w2, run_samples = sys.argv[1:7]

import glob, os, statistics

def results(path):
    rows = {}
    for line in open(path):
        if line.startswith("RESULT "):
            kv = dict(f.split("=", 1) for f in line.split()[1:])
            rows[kv["method"]] = kv
    return rows

py = results(f"{out}/py_rpeaks.txt")
nk_pt = py["nk_pantompkins1985"]
nk_msps = float(nk_pt["msps"])
print("\nR-peak detection (band-pass + detector, records in memory, 1 thread, 48 records)")
print(f"{'method':<24}{'F1 %':>9}{'M samples/s':>14}{'vs NK pantompkins1985':>24}")
for m in os.environ["METHODS"].split():
    runs = [json.load(open(p)) for p in glob.glob(f"{out}/eval_{m}_*.json")]
    d = min(runs, key=lambda r: r["seconds"])  # fastest run, as for NeuroKit2
    msps = d["samples"] / d["seconds"] / 1e6
    print(f"{'ecgflow ' + m:<24}{100 * d['gross']['f1']:>9.3f}{msps:>14.1f}{msps / nk_msps:>23.1f}x")
for name, kv in py.items():
    print(f"{name:<24}{100 * float(kv['f1']):>9.3f}{float(kv['msps']):>14.2f}"
          f"{float(kv['msps']) / nk_msps:>23.2f}x")

exs = [results(p)["neurokit"] for p in glob.glob(f"{out}/py_extraction_*.txt")]
nk_s = statistics.median(float(e["seconds"]) for e in exs)
ex = {"samples": exs[0]["samples"], "msps": float(exs[0]["samples"]) / nk_s / 1e6}
print("\nWhole extraction path (read → band-pass → R peaks → 259-sample z-scored windows), 48 records")
print(f"{'run':<34}{'seconds':>9}{'M samples/s':>14}{'NK script / this':>18}")
print(f"{'NK script, neurokit (median)':<34}{nk_s:>9.3f}{float(ex['msps']):>14.2f}{1:>17.1f}x")
samples = float(run_samples) if run_samples else float(ex["samples"])
for w, eng, wall in (("1", e1, w1), ("2", e2, w2)):
    if not eng:
        print(f"ecgflow --workers {w}: not run (pipeline did not validate)")
        continue
    for what, s in (("engine 'done'", float(eng)), ("process wall", float(wall))):
        label = f"ecgflow -w{w} {what} (median)"
        print(f"{label:<34}{s:>9.3f}{samples / s / 1e6:>14.1f}{nk_s / s:>17.1f}x")
EOF
