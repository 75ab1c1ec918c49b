#!/usr/bin/env bash
# Side-by-side A/B of two held platforms on the tiny model (e.g. a baseline built from another worktree and the
# change), interleaved so that the shared machine's load drifts over both alike (use an even number of rounds: every
# other round runs the setups in reverse order). Start each with
#   dotnet run -c Release --no-build --project bench/Platform.Bench.Serving -- --seconds 2 --hold-seconds 2400
# and pass what each prints on its HOLD lines. Prints, per round and as medians: requests/s and p99 (wrk -t1) and the CPU ms per
# request of InferenceApi and of the workers (from /proc, so only these processes count).
#   bench/ab-hold.sh ROUNDS SECONDS CONCURRENCY \
#     "A <request.lua> <base url> <api pid> <worker pid>..." "B <request.lua> <base url> <api pid> <worker pid>..."
# AB_MODEL=bench (with the benchmark model's request.lua) drives the benchmark model instead of the tiny one.
set -euo pipefail
rounds=$1 seconds=$2 concurrency=$3; shift 3
model=${AB_MODEL:-tiny}
# utime + stime, counted after the command name's closing parenthesis (a name may hold spaces).
ticks() { local total=0 pid stat f; for pid in "$@"; do stat=$(< "/proc/$pid/stat"); read -ra f <<< "${stat##*) }"; total=$((total + f[11] + f[12])); done; echo "$total"; }
hz=$(getconf CLK_TCK)
results=$(mktemp); trap 'rm -f "$results"' EXIT
setups=("$@")
for ((round = 1; round <= rounds; round++)); do
  # Odd rounds in the given order, even rounds reversed: a setup's place in a round (e.g. right after another's load)
  # biases it, and alternating cancels that out over an even number of rounds.
  order=("${setups[@]}")
  if ((round % 2 == 0)); then
    order=(); for ((i = ${#setups[@]} - 1; i >= 0; i--)); do order+=("${setups[i]}"); done
  fi
  for setup in "${order[@]}"; do
    read -ra s <<< "$setup"
    label=${s[0]} script=${s[1]} url=${s[2]} api=${s[3]} workers=("${s[@]:4}")
    api0=$(ticks "$api"); workers0=$(ticks "${workers[@]}")
    out=$(wrk -t1 "-c$concurrency" "-d${seconds}s" --latency -s "$script" "$url/v2/models/$model/infer")
    api1=$(ticks "$api"); workers1=$(ticks "${workers[@]}")
    requests=$(grep -oP '^\s*\K[0-9]+(?= requests in)' <<< "$out")
    rate=$(grep -oP 'Requests/sec:\s*\K[0-9.]+' <<< "$out")
    # wrk prints the 99th percentile with its own unit (us, ms or s).
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; print v }' <<< "$out")
    echo "$label $rate $(( (api1 - api0) )) $(( (workers1 - workers0) )) $requests $p99" | tee -a "$results" |
      awk -v hz="$hz" '{ printf "%-10s %8.0f req/s  p99 %7.2f ms  api %.4f  workers %.4f CPU ms/request\n", $1, $2, $6, $3 * 1000 / hz / $5, $4 * 1000 / hz / $5 }'
  done
done
echo "medians over $rounds rounds:"
awk -v hz="$hz" '{ print $1, $2, $3 * 1000 / hz / $5, $4 * 1000 / hz / $5, $6 }' "$results" | sort -k1,1 |
  awk '{ n[$1]++; r[$1, n[$1]] = $2; a[$1, n[$1]] = $3; w[$1, n[$1]] = $4; p[$1, n[$1]] = $5 }
       function median(v, label, count,   i, j, t, x) { for (i = 1; i <= count; i++) x[i] = v[label, i];
         for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
         return count % 2 ? x[(count + 1) / 2] : (x[count / 2] + x[count / 2 + 1]) / 2 }
       END { for (label in n) printf "%-10s %8.0f req/s  p99 %7.2f ms  api %.4f  workers %.4f CPU ms/request\n", label, median(r, label, n[label]),
               median(p, label, n[label]), median(a, label, n[label]), median(w, label, n[label]) }'
