#!/usr/bin/env bash
# The long load run: N simulated devices (default 10,000) against `sunledger serve` for M
# minutes (default 10), server and simulator as two processes over real MQTT and gRPC. Samples
# the server's resident memory every 30 s and writes benches/LONG_LOAD.md with the series,
# the growth over the steady phase (after every device connected), the simulator's audit
# (every acknowledged reading stored, every ledger summing to its balance) and the server's
# drop and rejection counters.
#
#   benches/long_load.sh [devices] [minutes] [connection_threads]
#
# connection_threads (default 1, the server's default) is `[broker] connection_threads`.
# Needs about 2 × devices open files (the container's hard limit is 20,000 here, hence two
# processes). Run on an otherwise idle machine.
set -euo pipefail

devices=${1:-10000}
minutes=${2:-10}
threads=${3:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
report="$root/benches/LONG_LOAD.md"
target=${CARGO_TARGET_DIR:-$root/target}
bin="$target/release/sunledger"
work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
log() { echo "== $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cd "$root"
cargo build --release --locked -p sunledger
ulimit -n "$(ulimit -Hn)" || true

mqtt=$(free_port); grpc=$(free_port); metrics=$(free_port)
export SUNLEDGER_DATABASE="$work/data/sunledger.redb"
token=$("$bin" admin create-org --name "Long load" --country KE --currency KES \
    --time-zone Africa/Nairobi --accept-terms --admin-name Load --admin-email load@example.com |
    sed -nE 's/^API token \(shown once\): (.*)$/\1/p')

# Memory is bounded by configuration: the database page cache and the broker's in-memory log
# per subscription. Smaller caps than the defaults fill within the first minutes, so the run
# shows whether anything grows beyond them.
cache_mib=16 segment_mib=2 segments=4
printf '%s\n' "storage_cache_bytes = $((cache_mib << 20))" '[broker]' \
    "segment_bytes_max = $((segment_mib << 20))" "segments_max = $segments" \
    "connection_threads = $threads" >"$work/long.toml"
log "serving on mqtt $mqtt, grpc $grpc, metrics $metrics"
RUST_LOG=warn,rumqttd=off "$bin" serve --config "$work/long.toml" --mqtt-listen "127.0.0.1:$mqtt" \
    --grpc-listen "127.0.0.1:$grpc" --metrics-listen "127.0.0.1:$metrics" \
    >"$work/server.log" 2>&1 &
server_pid=$!
sleep 2

# Resident memory of the server, kB, every 30 s, with the number of devices online.
sample() {
    local start=$SECONDS
    while kill -0 "$server_pid" 2>/dev/null; do
        local rss connected
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
        connected=$(curl -s "http://127.0.0.1:$metrics/metrics" |
            awk '/^sunledger_devices_online/ {n += $2} END {print n + 0}' || echo 0)
        echo "$((SECONDS - start)) $rss ${connected:-0}" >>"$work/rss.txt"
        sleep 30
    done
}
sample &
sampler_pid=$!

# The fleet connects in seconds since the vendored broker's fixes (vendor/PATCHES.md); the
# allowance keeps the run valid on slower machines, and the report's steady phase starts only
# once every device is online.
connect_allowance_s=300
log "simulating $devices devices for $minutes min after a ${connect_allowance_s} s connect allowance"
SUNLEDGER_TOKEN="$token" RUST_LOG=warn "$bin" sim --grpc "http://127.0.0.1:$grpc" \
    --broker "127.0.0.1:$mqtt" --devices "$devices" --credentials "$work/sim.txt" \
    --duration "$((minutes * 60 + connect_allowance_s))" --report-interval-ms 10000 --time-scale 60 \
    --duplicate-rate 0.01 --json >"$work/sim.json" 2>"$work/sim.log"

curl -s "http://127.0.0.1:$metrics/metrics" >"$work/metrics.txt"
kill "$sampler_pid" 2>/dev/null || true
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""

python3 - "$work" "$devices" "$minutes" "$report" "$(git rev-parse --short HEAD)" \
    "$cache_mib" "$segment_mib" "$segments" "$threads" <<'EOF'
import json, re, sys, datetime, os
work, devices, minutes, report, commit, cache_mib, segment_mib, segments, threads = sys.argv[1:10]
sim = json.load(open(f"{work}/sim.json"))
rows = [line.split() for line in open(f"{work}/rss.txt") if line.strip()]
samples = [(int(t), int(kb), float(c)) for t, kb, c in rows]
metrics = open(f"{work}/metrics.txt").read()
def counter(name):
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total
# The steady phase runs from the first to the last sample with the most devices online (every
# device, unless some were lost), before the simulator stops.
online_max = max(s[2] for s in samples)
peak = [i for i, s in enumerate(samples) if s[2] == online_max]
steady = samples[peak[0]:peak[-1] + 1]
first, last = steady[0], steady[-1]
growth = (last[1] - first[1]) / first[1] * 100 if first[1] else 0.0
# The caps fill during the first half; the trend over the second half is what would go on.
half = [s for s in steady if s[0] >= (first[0] + last[0]) / 2] or [last]
def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _, _ in points) / n
    mk = sum(kb for _, kb, _ in points) / n
    var = sum((t - mt) ** 2 for t, _, _ in points)
    return sum((t - mt) * (kb - mk) for t, kb, _ in points) / var * 60 / 1024 if var else 0.0
audit = sim.get("audit") or {}
lines = [
    "# Long load run", "",
    f"Written by `benches/long_load.sh {devices} {minutes} {threads}` on {datetime.date.today()}, commit {commit}, "
    f"{os.cpu_count()} CPUs; server and simulator as two processes on loopback.", "",
    "| | |", "|---|---|",
    f"| devices | {devices} |",
    f"| threads serving device connections (`[broker] connection_threads`) | {threads} |",
    f"| memory caps | database page cache {cache_mib} MiB (`storage_cache_bytes`); broker log {segments} × {segment_mib} MiB per subscription (`[broker] segment_bytes_max`, `segments_max`) |",
    f"| duration | {minutes} min fully connected asked; {online_max:.0f} of {devices} online from t={first[0]} s to t={last[0]} s ({(last[0] - first[0]) / 60:.1f} min sampled) |",
    f"| simulator | {json.dumps({k: v for k, v in sim.items() if not isinstance(v, (dict, list))})} |",
    f"| simulator totals | {json.dumps({k: v for k, v in sim.get('totals', {}).items() if not isinstance(v, (dict, list))})} |",
    f"| audit | {json.dumps(audit)} |",
    f"| server RSS at steady start → end | {first[1] / 1024:.0f} MiB (t={first[0]} s) → {last[1] / 1024:.0f} MiB (t={last[0]} s): {growth:+.1f} % |",
    f"| server RSS over the second half of the steady phase | {half[0][1] / 1024:.0f} MiB (t={half[0][0]} s) → {last[1] / 1024:.0f} MiB: {(last[1] - half[0][1]) / half[0][1] * 100:+.1f} %, trend {slope(half):+.2f} MiB/min (least squares over {len(half)} samples) |",
    f"| ingest dropped | {counter('sunledger_ingest_dropped_total'):.0f} |",
    f"| ingest rejected | {counter('sunledger_ingest_rejected_total'):.0f} |",
    f"| billing commit failures | {counter('sunledger_billing_commit_failed_total'):.0f} |",
    f"| broker log evictions (skipped) | {counter('sunledger_ingest_broker_skipped_total'):.0f} |",
    "", "Resident memory every 30 s (seconds, MiB, connected devices):", "",
    "| t (s) | RSS (MiB) | connected |", "|---|---|---|",
] + [f"| {t} | {kb / 1024:.0f} | {c:.0f} |" for t, kb, c in samples]
open(report, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
