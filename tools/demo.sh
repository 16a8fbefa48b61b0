#!/usr/bin/env bash
# The main job end to end on embedded defaults: create a project (its idf.toml turns
# authentication on and holds the project's admin credential), start the server with it, forecast
# the project's sample energy map over gRPC with the CLI (which reads ./idf.toml for its
# credential), check the result, stream sensor readings into the project's site and watch its
# live map, show that a caller without the credential is refused, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
work=$(mktemp -d)
port=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export IDF_SERVER=127.0.0.1:$port

echo "== creating a project"
$BIN/idf init "$work/site"
cd "$work/site"

echo "== starting idf serve --config idf.toml on $IDF_SERVER (auth on; log: $work/server.log)"
IDF_DATA_DIR="$work/data" $BIN/idf serve --config idf.toml --port "$port" --log-format text 2>"$work/server.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  $BIN/idf health >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.2
done
$BIN/idf health

echo "== forecasting 200 frames (diffusion plus a drift) over gRPC, with the project's credential"
$BIN/idf predict --energy-map maps/energy_map.npy --steps 200 \
  --diffusivity 0.2 --velocity 0.3,0.1 --out "$work/forecast.npy"

$BIN/python - "$work/forecast.npy" maps/energy_map.npy <<'PY'
import sys
import numpy as np
frames, start = np.load(sys.argv[1]), np.load(sys.argv[2])
drift = abs(frames[-1].sum(dtype=np.float64) / start.sum(dtype=np.float64) - 1)
print(f"frames {frames.shape}, peak {start.max():.3f} -> {frames[-1].max():.3f}, "
      f"relative change of the total {drift:.2e} (periodic: conserved to float32 rounding)")
assert drift < 200 * 2.0**-24, "total not conserved"
PY

echo "== streaming readings into site floor-1 (a warm spot circling 256 sensors) and watching its map"
$BIN/idf telemetry watch floor-1 --duration 8 --json >"$work/maps.ndjson" &
watcher=$!
sleep 1  # the watcher's first map is the site's map before any reading
$BIN/idf telemetry publish --site floor-1 --rate 5000 --sensors 256 --duration 5
wait $watcher
$BIN/python - "$work/maps.ndjson" <<'PY'
import json, sys
from datetime import datetime
maps = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
live = [m for m in maps if m["reading_count"] > 0]
assert live, "the watcher saw no map with readings"
t = [datetime.fromisoformat(m["update_time"].replace("Z", "+00:00")[:26] + "+00:00") for m in live]
span = (t[-1] - t[0]).total_seconds() or 1.0
print(f"map updates seen by the watcher: {len(live)} in {span:.1f} s ({len(live) / span:.0f}/s), "
      f"{live[-1]['reading_count']} readings on {live[-1]['observed_count']} cells, "
      f"last sequence {live[-1]['sequence']}")
PY

echo "== the same call without the project's credential is refused"
cd "$work"
if $BIN/idf predict --energy-map site/maps/energy_map.npy --steps 2 --out "$work/x.npy" --json; then
  echo "an anonymous forecast was served" >&2
  exit 1
fi
echo "== done: frames in $work/forecast.npy"
