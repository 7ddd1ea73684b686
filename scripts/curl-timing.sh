#!/bin/sh
# curl timing loop: N POSTs of QUERY to URL, then count, errors, latency percentiles of the total
# time and the share of each routing_method.
#
#   scripts/curl-timing.sh URL [N] [QUERY]
#   scripts/curl-timing.sh http://127.0.0.1:3000/route 1000 "What are my AWS costs?"
#   API_KEY=... scripts/curl-timing.sh https://ID.execute-api.REGION.amazonaws.com/prod/route 200
#
# URL is a full endpoint (/route or /query) of the local server, `cargo lambda watch`
# (http://127.0.0.1:9000/lambda-url/agent-router/route) or a deployed API. API_KEY, when set, is
# sent as x-api-key. Needs only POSIX sh, curl, awk and sort.
set -eu
if [ $# -lt 1 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
url=$1
n=${2:-100}
query=${3:-What are my AWS costs?}
escaped=$(printf '%s' "$query" | sed 's/\\/\\\\/g; s/"/\\"/g')
body=$(printf '{"query": "%s"}' "$escaped")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

i=0
while [ "$i" -lt "$n" ]; do
  i=$((i + 1))
  if [ -n "${API_KEY:-}" ]; then
    line=$(curl -s -o "$tmp/body" -X POST -H 'content-type: application/json' -H "x-api-key: $API_KEY" \
      --data "$body" -w '%{http_code} %{time_connect} %{time_starttransfer} %{time_total}' "$url" || echo "000 0 0 0")
  else
    line=$(curl -s -o "$tmp/body" -X POST -H 'content-type: application/json' \
      --data "$body" -w '%{http_code} %{time_connect} %{time_starttransfer} %{time_total}' "$url" || echo "000 0 0 0")
  fi
  method=$(sed -n 's/.*"routing_method":"\([a-z]*\)".*/\1/p' "$tmp/body" 2>/dev/null | head -n 1)
  echo "$line ${method:-none}" >>"$tmp/results"
done

awk '
  { n++; if ($1 !~ /^2/) errors++; method[$5]++; connect += $2; ttfb += $3 }
  END {
    printf "requests %d, errors (non-2xx) %d\n", n, errors + 0
    printf "mean connect %.2f ms, mean time to first byte %.2f ms\n", connect / n * 1000, ttfb / n * 1000
    for (m in method) printf "routing_method %-8s %5.1f %%\n", m, method[m] * 100 / n
  }' "$tmp/results"
awk '{ print $4 }' "$tmp/results" | sort -n | awk '
  { t[NR] = $1 }
  function pct(p,   k) { k = int(p * NR + 0.999999); if (k < 1) k = 1; if (k > NR) k = NR; return t[k] * 1000 }
  END { printf "total time ms: min %.2f  p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n", t[1] * 1000, pct(0.50), pct(0.95), pct(0.99), t[NR] * 1000 }'
