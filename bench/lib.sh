# Shared by the benchmarks (sourced, after BIN, tmp and the pids array are set).

contacts() { # rows file
  awk -v n="$1" 'BEGIN{print "customer_id,first_name,phone,plan"; for(i=1;i<=n;i++) printf "C%d,name%d,55119%08d,gold\n", i, i, i}' > "$2"
}

sandbox() { # log-name flags...  -> sets URL (no subshell: the pid must reach cleanup)
  local name="$1"; shift
  "$BIN" sandbox --addr 127.0.0.1:0 "$@" 2> "$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q "listening on" "$tmp/$name.err" 2>/dev/null && break
    sleep 0.05
  done
  URL="$(grep -o 'http://[^ ]*' "$tmp/$name.err" | head -1)"
}
