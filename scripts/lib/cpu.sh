# Sourced by the benchmark scripts: where the machine's CPU went during a load run.
# `measured SERVER_PID LOAD ARGS…` runs LOAD ARGS… and then prints the CPU seconds the
# server, PostgreSQL (every `postgres` process) and the generator used meanwhile.

# CPU seconds (user + system) used so far by the given processes.
cpu_of() {
  local ticks=0 pid f
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    set -- $f
    ticks=$(( ticks + ${12} + ${13} ))
  done
  echo "$ticks"
}

# Runs the generator and then prints where the machine's CPU went meanwhile: the
# server, PostgreSQL (every postgres process) and the generator itself.
measured() { # server_pid command args…
  local server=$1; shift
  local hz; hz=$(getconf CLK_TCK)
  local pg_before srv_before
  pg_before=$(cpu_of $(pgrep -x postgres || true))
  srv_before=$(cpu_of "$server")
  local start; start=$(date +%s.%N)
  "$@" &
  local gen=$!
  local gen_ticks=0
  while kill -0 "$gen" 2>/dev/null; do gen_ticks=$(cpu_of "$gen"); sleep 0.5; done
  wait "$gen"
  local took; took=$(python3 -c "print($(date +%s.%N) - $start)")
  local pg_after srv_after
  pg_after=$(cpu_of $(pgrep -x postgres || true))
  srv_after=$(cpu_of "$server")
  python3 -c "
hz, took = $hz, $took
print(f'                 cpu over {took:.1f} s (2 cores = {2*took:.1f} s): server {($srv_after-$srv_before)/hz:.1f} s, PostgreSQL {($pg_after-$pg_before)/hz:.1f} s, generator {$gen_ticks/hz:.1f} s (at least)')"
}

