#!/usr/bin/env bash
# `feedhandler bench latency` across two "hosts" on this machine: the simulator in network
# namespace fh-exchange, the handler, broker and consumer in fh-handler, joined by a veth pair
# (optionally with `tc netem` delay on the exchange's side). Loopback-only: the namespaces have
# no route out, nothing leaves the machine. Both namespaces share the kernel's CLOCK_REALTIME,
# so the stages are exact (the clock note says so); across real hosts see bench/BENCHMARKS.md.
#
#   sudo bench/latency_two_namespaces.sh [--rate N] [--delay 200us] [-- bench latency flags]
#
# Needs root (ip netns, tc). Everything it creates is removed on exit; namespaces or a veth of
# its names that exist already (another run) stop it before it touches them. Results go to
# bench/results/latency-netns unless the bench latency flags give --out.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=10000
DELAY=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rate|--delay)
            [[ $# -ge 2 ]] || { echo "$1 needs a value (see the header of $0)" >&2; exit 2; }
            if [[ "$1" == --rate ]]; then RATE="$2"; else DELAY="$2"; fi
            shift 2 ;;
        --) shift; break ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done

EX=fh-exchange HD=fh-handler
EX_IP=10.77.0.1 HD_IP=10.77.0.2 PORT=9443
PY="$PWD/.venv/bin/python"
SIM_PID=""
WORK=$(mktemp -d /tmp/fh-netns.XXXXXX)

for ns in "$EX" "$HD"; do
    if [[ -e "/run/netns/$ns" ]]; then
        echo "network namespace $ns exists (another run?): remove it with ip netns del $ns" >&2
        exit 2
    fi
done
if ip link show fh-ex >/dev/null 2>&1; then
    echo "link fh-ex exists (another run?): remove it with ip link del fh-ex" >&2
    exit 2
fi
OUT=(--out bench/results/latency-netns)
for arg in "$@"; do [[ "$arg" == --out || "$arg" == --out=* ]] && OUT=(); done

MADE=()
cleanup() {
    [[ -n "$SIM_PID" ]] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
    for ns in "${MADE[@]}"; do  # (deleting a namespace removes its veth end)
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$EX" && MADE+=("$EX")
ip netns add "$HD" && MADE+=("$HD")
ip link add fh-ex type veth peer name fh-hd
ip link set fh-ex netns "$EX"
ip link set fh-hd netns "$HD"
ip -n "$EX" addr add "$EX_IP/30" dev fh-ex
ip -n "$HD" addr add "$HD_IP/30" dev fh-hd
for ns in "$EX" "$HD"; do ip -n "$ns" link set lo up; done
ip -n "$EX" link set fh-ex up
ip -n "$HD" link set fh-hd up
if [[ -n "$DELAY" ]]; then  # one way: exchange -> handler, where market data flows
    if ! ip netns exec "$EX" tc qdisc add dev fh-ex root netem delay "$DELAY"; then
        echo "tc netem is not available in this kernel (module sch_netem); run without --delay" >&2
        exit 2
    fi
fi

ip netns exec "$EX" "$PY" -m feedhandler simulate --host "$EX_IP" --port "$PORT" --seed 1 \
    --rate "$RATE" --wall-clock --ready-file "$WORK/ready.json" >"$WORK/simulator.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 600); do [[ -f "$WORK/ready.json" ]] && break; sleep 0.1; done
[[ -f "$WORK/ready.json" ]] || { cat "$WORK/simulator.log" >&2; exit 1; }

NOTE="two network namespaces joined by a veth pair on one kernel (netem delay: ${DELAY:-none}):"
NOTE+=" one CLOCK_REALTIME, so stages from E are exact (the clock round trip, measured as"
NOTE+=" across hosts, checks the method: its offset should be 0 within its error)"
ip netns exec "$HD" "$PY" -m feedhandler bench latency --url "ws://$EX_IP:$PORT" \
    --rates "$RATE" --clock-offset-us 0 --clock-note "$NOTE" "${OUT[@]}" "$@"
