#!/usr/bin/env bash
# Live-monitoring benchmark: how many 360 Hz streams this machine classifies in real time,
# the latency of each verdict, and memory over a long run.
#
#   benches/live.sh            (from the workspace root, after `cargo build --release -p ecgflow`)
#
# Environment: ECGFLOW_BIN (default target/release/ecgflow), ECGFLOW_DATA (default
# ../shared/data), STREAMS (default "100 200 300 400 500 600"), SECONDS (default 60),
# WORKERS (default: the number of cores), DAY_SPEED (default 1000; 0 skips the day run).
#
# 1. For each N in STREAMS: pipelines/monitor-mitdb.toml with N streams (DS2 records, as
#    many copies as needed) played at real time for SECONDS, overflow = drop_oldest. A
#    load is sustained when no sample was dropped and the run ended within 10 % of
#    SECONDS. Prints the prediction latency (from the arrival of the chunk that completed a
#    beat's window to its prediction; p50/p99 are bucket upper bounds) and the peak RSS.
# 2. One synthetic stream of 24 h played at DAY_SPEED× (86.4 s at 1000×) through the same
#    path, RSS sampled every 5 s: constant memory means the last samples stay near the first.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${ECGFLOW_BIN:-target/release/ecgflow}
export ECGFLOW_DATA=${ECGFLOW_DATA:-../shared/data}
STREAMS=${STREAMS:-100 200 300 400 500 600}
SECONDS_PLAYED=${SECONDS:-60}
WORKERS=${WORKERS:-$(nproc)}
DAY_SPEED=${DAY_SPEED:-1000}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/ecgflow-live.XXXXXX")
DS2_RECORDS=22

echo "ecgflow live benchmark; results in $OUT"
echo "load before: $(uptime)"
echo "cpus: $(nproc); workers: $WORKERS; binary: $BIN"
printf "%8s %10s %10s %12s %14s %10s %10s\n" streams wall_s dropped sustained latency_p50_ms p99_ms rss_mb
for n in $STREAMS; do
    copies=$(( (n + DS2_RECORDS - 1) / DS2_RECORDS ))
    log="$OUT/streams_$n.log"
    # `time -v` gives the peak RSS; the pipeline keeps only events, the counts go to the console.
    /usr/bin/time -v "$BIN" run pipelines/monitor-mitdb.toml --quiet --workers "$WORKERS" \
        --set sources.ward.speed=1 --set sources.ward.copies="$copies" \
        --set sources.ward.duration_s="$SECONDS_PLAYED" --set sources.ward.overflow=drop_oldest \
        --set sinks.events.path="$OUT/events_$n.jsonl" --set sinks.census_file.path="$OUT/census_$n.jsonl" \
        --metrics "$OUT/metrics_$n.prom" >"$log" 2>&1 || { echo "run with $n streams failed: $log"; continue; }
    streams=$(( copies * DS2_RECORDS ))
    wall=$(grep -o 'in [0-9.]* s' "$log" | tail -1 | awk '{print $2}' || true)
    dropped=$(grep -o 'dropped [0-9]* samples' "$log" | awk '{print $2}' || true)
    dropped=${dropped:-0}
    p50=$(grep -o 'p50 ≤ [0-9.]* ms' "$log" | awk '{print $3}' || true)
    p99=$(grep -o 'p99 ≤ [0-9.inf]* ms' "$log" | awk '{print $3}' || true)
    rss=$(grep 'Maximum resident' "$log" | awk '{printf "%.0f", $6/1024}' || true)
    sustained=$(awk -v w="$wall" -v s="$SECONDS_PLAYED" -v d="$dropped" 'BEGIN{print (d==0 && w<=s*1.1) ? "yes" : "no"}')
    printf "%8s %10s %10s %12s %14s %10s %10s\n" "$streams" "$wall" "$dropped" "$sustained" "${p50:--}" "${p99:--}" "$rss"
done

if [ "$DAY_SPEED" != "0" ]; then
    cat >"$OUT/day.toml" <<TOML
[sources.ecg]
type = "synthetic"
streams = 1
duration_s = 86400.0
chunk_size = 36
speed = $DAY_SPEED
ectopic_probability = 0.05
[transforms.clean]
type = "bandpass"
inputs = ["ecg"]
low_hz = 0.5
high_hz = 40.0
mode = "causal"
[transforms.peaks]
type = "rpeaks"
inputs = ["clean"]
[transforms.beats]
type = "segment"
inputs = ["peaks"]
wait_for_next = false
template = true
[transforms.classify]
type = "model"
inputs = ["beats"]
path = "models/resecanet-ds1.json"
max_delay_ms = 0
[transforms.alarms]
type = "alarms"
inputs = ["classify"]
[transforms.counts]
type = "census"
inputs = ["classify", "alarms"]
[sinks.events]
type = "jsonl"
inputs = ["alarms"]
path = "$OUT/day_events.jsonl"
[sinks.census]
type = "null"
inputs = ["counts"]
TOML
    "$BIN" run "$OUT/day.toml" --quiet >"$OUT/day.log" 2>&1 &
    pid=$!
    echo "24 h of one stream at ${DAY_SPEED}×: RSS (MB) every 5 s"
    rss_line=""
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$rss" ] && rss_line="$rss_line $rss"
        sleep 5
    done
    wait "$pid" || echo "the day run failed: $OUT/day.log"
    echo "  $rss_line"
    tail -1 "$OUT/day.log"
fi
echo "load after: $(uptime)"
