#!/usr/bin/env bash
# The main job end to end on embedded defaults: start the server, create a project with a
# sample energy map, forecast it over gRPC with the CLI, check the result, stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
work=$(mktemp -d)
port=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export IDF_SERVER=127.0.0.1:$port

echo "== starting idf serve on $IDF_SERVER (log: $work/server.log)"
IDF_DATA_DIR="$work/data" $BIN/idf serve --port "$port" --log-format text 2>"$work/server.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  $BIN/idf health >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.2
done
$BIN/idf health

echo "== creating a project"
$BIN/idf init "$work/site"

echo "== forecasting 200 frames (diffusion plus a drift) over gRPC"
$BIN/idf predict --energy-map "$work/site/maps/energy_map.npy" --steps 200 \
  --diffusivity 0.2 --velocity 0.3,0.1 --out "$work/forecast.npy"

$BIN/python - "$work/forecast.npy" "$work/site/maps/energy_map.npy" <<'PY'
import sys
import numpy as np
frames, start = np.load(sys.argv[1]), np.load(sys.argv[2])
drift = abs(frames[-1].sum(dtype=np.float64) / start.sum(dtype=np.float64) - 1)
print(f"frames {frames.shape}, peak {start.max():.3f} -> {frames[-1].max():.3f}, "
      f"relative change of the total {drift:.2e} (periodic: conserved to float32 rounding)")
assert drift < 200 * 2.0**-24, "total not conserved"
PY
echo "== done: frames in $work/forecast.npy"
