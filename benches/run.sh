#!/usr/bin/env bash
# Runs every benchmark in release mode and writes benches/RESULTS.md.
#
#   benches/run.sh [devices] [seconds_per_phase] [interval_ms] [rounds]
#
# interval_ms is each device's report interval at the start of e2e's and relay's load ramp
# (default 250): the offer then grows by a quarter per step until a side no longer takes all
# of it, and its best step is its capacity (marked as a floor if even the last step took all).
#
# engine-throughput (100,000 accounts, sealed readings, on two CPUs and pinned to one; then
# 10,000 vs 1,000,000 for scale),
# reconnect-storm (10,000 units reconnecting at once after a restart, whatever `devices` is:
# the issue's figure), tcp-ceiling (bare loopback TCP round trips of a telemetry PUBLISH and
# its PUBACK on as many connections: what no MQTT server on this machine can exceed; then
# QoS 0 PUBLISHes nothing answers, paced at the issue's 200,000 msgs/s), e2e (the whole
# server in-process under a simulated fleet), and relay:
# the same fleet against Mosquitto (installed with apt-get if missing; skipped with a note if
# that fails). e2e and relay run `rounds` times (default 3), alternating, because this shared
# host's speed drifts by more than the difference being measured: RESULTS.md gives every
# round's rates, the ratio of the medians, and the detailed figures of each side's median
# round. Run one at a time on an otherwise idle machine: every figure is CPU-bound.
set -euo pipefail

devices=${1:-10000}
seconds=${2:-20}
interval_ms=${3:-250}
rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
results="$root/benches/RESULTS.md"
target=${CARGO_TARGET_DIR:-$root/target}
bin="$target/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$root"
cargo build --release --locked -p sunledger-benches
log() { echo "== $*" >&2; }

log "engine-throughput, 100,000 accounts"
"$bin/engine-throughput" 100000 5 | tee "$work/engine.txt"
# The issue's target is per core: the same run with the partition and its commit thread
# pinned to one CPU (taskset, util-linux), so they share it.
log "engine-throughput, 100,000 accounts, pinned to one CPU"
taskset -c 0 "$bin/engine-throughput" 100000 5 | tee "$work/engine-1cpu.txt"
log "engine-throughput scale: 10,000 vs 1,000,000 accounts"
"$bin/engine-throughput" 10000 5 | tee "$work/engine-10k.txt"
"$bin/engine-throughput" 1000000 3 | tee "$work/engine-1m.txt"
log "reconnect-storm, 10,000 units"
"$bin/reconnect-storm" 10000 | tee "$work/storm.txt"
mosquitto_ready=true
if ! command -v mosquitto >/dev/null; then
    log "installing mosquitto"
    (apt-get install -y mosquitto >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y mosquitto >/dev/null 2>&1; }) ||
        mosquitto_ready=false
fi
command -v mosquitto >/dev/null || mosquitto_ready=false

# One relay round against a fresh Mosquitto, its output in $1.
relay_round() {
    local port mosquitto_pid
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
max_inflight_messages 100
persistence false
EOF
    # Mosquitto takes its open-file limit from the shell; one descriptor per device.
    ulimit -n "$(ulimit -Hn)" || true
    mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
    mosquitto_pid=$!
    sleep 1
    log "relay against mosquitto on 127.0.0.1:$port"
    "$bin/relay" "127.0.0.1:$port" "$devices" "$seconds" "$interval_ms" "$mosquitto_pid" | tee "$1"
    kill "$mosquitto_pid"
    wait "$mosquitto_pid" 2>/dev/null || true
}

ceiling_rounds=()
e2e_rounds=()
relay_rounds=()
for round in $(seq "$rounds"); do
    log "round $round of $rounds: e2e, $devices devices, $seconds s per phase"
    ceiling_rounds+=("$work/ceiling-$round.txt")
    "$bin/tcp-ceiling" "$devices" 10 | tee "$work/ceiling-$round.txt"
    e2e_rounds+=("$work/e2e-$round.txt")
    "$bin/e2e" "$devices" "$seconds" "$interval_ms" | tee "$work/e2e-$round.txt"
    if $mosquitto_ready; then
        relay_rounds+=("$work/relay-$round.txt")
        relay_round "$work/relay-$round.txt"
    fi
done

# One figure from a run's output: the first match of a sed expression.
figure() { sed -nE "$2" "$1" | head -n1; }
# The rate a round's output gives (e2e: stored at the best step; relay: relayed), 0 if none.
e2e_rate() { figure "$1" 's/^\| \[max\] stored by the platform +\| ([0-9]+) msgs\/s.*/\1/p' | grep . || echo 0; }
relay_rate() { figure "$1" 's/^relay [^c].*relayed ([0-9]+) msgs\/s.*/\1/p' | grep . || echo 0; }
# Of the round files after $1, the one whose rate (by the function named $1) is the median.
median_round() {
    local rate=$1
    shift
    for file in "$@"; do echo "$($rate "$file") $file"; done | sort -n | sed -n "$((($# + 1) / 2))p" | cut -d' ' -f2
}
# Every round's rate, in the order run.
round_rates() {
    local rate=$1
    shift
    for file in "$@"; do $rate "$file"; done | paste -sd/
}
ceiling_rate() { figure "$1" 's/.*nothing parsed or stored: ([0-9]+) round trips\/s.*/\1/p' | grep . || echo 0; }
cp "$(median_round ceiling_rate "${ceiling_rounds[@]}")" "$work/ceiling.txt"
ceiling_rates=$(round_rates ceiling_rate "${ceiling_rounds[@]}")
one_way_rate() { figure "$1" 's/^tcp-ceiling one-way: .* msgs\/s offered, ([0-9]+) received.*/\1/p' | grep . || echo 0; }
one_way_rates=$(round_rates one_way_rate "${ceiling_rounds[@]}")
# A rate as a share of the median round's loopback ceiling.
of_ceiling() { python3 -c "print(f'{$1 / max($(ceiling_rate "$work/ceiling.txt"), 1):.2f}')"; }
cp "$(median_round e2e_rate "${e2e_rounds[@]}")" "$work/e2e.txt"
e2e_rates=$(round_rates e2e_rate "${e2e_rounds[@]}")

relay_line="skipped: mosquitto could not be installed"
relay_cpu="not run"
relay_rates="not run"
if $mosquitto_ready; then
    cp "$(median_round relay_rate "${relay_rounds[@]}")" "$work/relay.txt"
    relay_rates=$(round_rates relay_rate "${relay_rounds[@]}")
    relay_line=$(grep '^relay [^c]' "$work/relay.txt" || echo "relay printed no figure")
    relay_cpu=$(sed -nE 's/^relay cpu per relayed message: (.*)/\1/p' "$work/relay.txt" | head -n1)
fi

engine_rate() { figure "$1" 's/.*median ([0-9]+) readings\/s shuffled.*/\1/p'; }
engine_in_order() { figure "$1" 's/.*readings\/s shuffled, ([0-9]+) in serial order.*/\1/p'; }
engine_cores() { figure "$1" 's/.* in serial order, ([0-9.]+) cores busy.*/\1/p'; }
engine_restart() { figure "$1" 's/^restart: .* of ([0-9]+) units replayed into checkpoints in ([0-9.]+) s.*/\2 s (\1 units)/p'; }
engine_admit() { figure "$1" 's/^ingest-admit: median ([0-9]+) ns\/message .*; one core doing both: ([0-9]+) readings\/s.*/\1 ns per message; one core doing both: \2 readings\/s/p'; }
engine_load() { figure "$1" 's/^loaded ([0-9]+) accounts in ([0-9.]+) s; resident hot state ([0-9]+) bytes.*/\2 s, \3 B\/account/p'; }
storm_figure() { figure "$work/storm.txt" "$1"; }
e2e_row() { figure "$work/e2e.txt" "s/^\| $1 +\| (.*) \|$/\1/p"; }

stored_max=$(e2e_rate "$work/e2e.txt")
relayed=$(relay_rate "$work/relay.txt" 2>/dev/null || echo 0)
ratio="n/a"
if [ -n "${relayed:-}" ] && [ "$relayed" -gt 0 ]; then
    ratio=$(python3 -c "print(f'{$stored_max / $relayed:.2f}')")
    if grep -q 'a floor' "$work/e2e.txt" "$work/relay.txt"; then
        ratio="$ratio (a side took all that was offered: not a comparison of capacities)"
    fi
fi

# Cost per message where it is paid, independent of how much the fleet could offer.
ours_us=$(e2e_row '\[max\] CPU per stored message: server, fleet process' | grep -oE '^[0-9.]+' || true)
mosquitto_us=$(printf '%s' "$relay_cpu" | sed -nE 's/^broker ([0-9.]+) µs.*/\1/p')
cpu_ratio="n/a"
if [ -n "${ours_us:-}" ] && [ -n "${mosquitto_us:-}" ]; then
    cpu_ratio=$(python3 -c "print(f'{$ours_us:.1f} µs ÷ {$mosquitto_us:.1f} µs = {$ours_us / $mosquitto_us:.2f}')")
fi

{
    echo "# Benchmark results"
    echo
    echo "Written by \`benches/run.sh $devices $seconds $interval_ms\`; see README.md, Benchmarks."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| machine | $(nproc) CPUs, $(sed -nE 's/^model name\s*: (.*)/\1/p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM |"
    echo "| date | $(date -u +%Y-%m-%dT%H:%MZ) |"
    echo "| git commit | $(git rev-parse --short HEAD 2>/dev/null || echo unknown) |"
    echo "| engine-throughput, 100,000 accounts | $(engine_rate "$work/engine.txt") readings/s shuffled, $(engine_in_order "$work/engine.txt") in serial order, $(engine_cores "$work/engine.txt") cores busy (one partition and its commit thread, durable, readings admitted by ingest, unit log full so checkpoints included) |"
    echo "| engine-throughput, 100,000 accounts, pinned to one CPU (\`taskset -c 0\`) | $(engine_rate "$work/engine-1cpu.txt") readings/s shuffled, $(engine_in_order "$work/engine-1cpu.txt") in serial order |"
    echo "| engine restart: replaying a full unit log into checkpoints | $(engine_restart "$work/engine.txt") |"
    echo "| ingest: admitting a reading (\`UnitDirectory::admit\`: directory lookup, MAC check) | $(engine_admit "$work/engine.txt") |"
    echo "| engine 10,000 accounts: load, memory / throughput | $(engine_load "$work/engine-10k.txt") / $(engine_rate "$work/engine-10k.txt") readings/s shuffled, $(engine_cores "$work/engine-10k.txt") cores busy |"
    echo "| engine 1,000,000 accounts: load, memory / throughput | $(engine_load "$work/engine-1m.txt") / $(engine_rate "$work/engine-1m.txt") readings/s shuffled, $(engine_cores "$work/engine-1m.txt") cores busy |"
    echo "| reconnect storm, 10,000 units at once: all authenticated / all CONNACKed | $(storm_figure 's/.*; storm: all authenticated ([^,]+), all CONNACKed ([^;]+);.*; target 2 s ([^;]+);.*/\1 \/ \2 after the first CONNECT (target: all authenticated within 2 s — \3)/p') |"
    echo "| reconnect storm, CONNECTs on connections the broker already accepted: all authenticated / all CONNACKed | $(storm_figure 's/.*; on open connections: all authenticated ([^,]+), all CONNACKed ([^;]+);.*/\1 \/ \2 after the first CONNECT/p') |"
    echo "| reconnect storm: credential check alone / rumqttd router registering one connection | $(storm_figure 's/.*; credential check ([0-9]+) ns; router ([0-9.]+) µs per connection.*/\1 ns \/ \2 µs/p') |"
    sed -nE '/^\| figure/,$ { /^\|(-| figure)/d; s/^\| ([^|]*[^ |]) +\| (.*) \|$/| e2e: \1 | \2 |/p }' "$work/e2e.txt"
    echo "| Mosquitto bare relay | $relay_line |"
    echo "| Mosquitto bare relay, CPU per relayed message | ${relay_cpu:-not printed} |"
    echo "| rounds, alternating: our stored / Mosquitto relayed msgs/s | $e2e_rates / $relay_rates (the e2e and relay rows are each side's median round) |"
    echo "| loopback TCP ceiling, $devices connections: a telemetry PUBLISH and its PUBACK per round trip, no broker or billing (\`tcp-ceiling\`), median round | $(figure "$work/ceiling.txt" 's/.*nothing parsed or stored: ([0-9]+) round trips\/s; CPU per round trip: (.*)/\1 round trips\/s; \2/p') |"
    echo "| loopback TCP ceiling by round (round trips/s) | $ceiling_rates |"
    echo "| loopback TCP one way, $devices connections: a QoS 0 telemetry PUBLISH per connection, paced, nothing answered or parsed (\`tcp-ceiling\`, the same round) | $(figure "$work/ceiling.txt" 's/^tcp-ceiling one-way: .*every ([0-9.]+ ms) each.*: ([0-9]+) msgs\/s offered, ([0-9]+) received; CPU per message: (.*)/one every \1 per connection: \2 msgs\/s offered, \3 received; \4/p') |"
    echo "| loopback TCP one way by round (msgs/s received) | $one_way_rates |"
    echo "| ratio: our stored msgs/s ÷ Mosquitto relayed msgs/s (medians) | $ratio |"
    echo "| share of the loopback TCP ceiling (medians): our stored / Mosquitto relayed | $(of_ceiling "$stored_max") / $(of_ceiling "${relayed:-0}") |"
    echo "| CPU per message, server side: ours (broker, ingest, billing, durable commit) ÷ Mosquitto's (relay) | $cpu_ratio |"
} >"$results"
log "wrote $results"
cat "$results"
