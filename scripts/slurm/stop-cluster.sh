#!/usr/bin/env bash
# stop-cluster.sh STATE_DIR
# Stops what start-cluster.sh STATE_DIR started: cancels all jobs, shuts down
# slurmctld + slurmd, kills leftover slurmstepd/job processes of this cluster,
# stops munged. Leaves STATE_DIR (config, key, logs, saved state) in place.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 1; }
STATE=$(realpath -m "$1")
RUN=$STATE/run
export SLURM_CONF=$STATE/etc/slurm.conf

# pid from pid file, only if it is a live process of THIS cluster (not reused, not a zombie)
pid_of() { local p c; p=$(cat "$RUN/$1.pid" 2>/dev/null) || return 0
           { c=$(tr '\0' ' ' < "/proc/$p/cmdline"); } 2>/dev/null || return 0
           [[ $c == *"$STATE/"* ]] && alive "$p" && echo "$p"; return 0; }
# zombies count as gone (the container's init reaps killed daemons with a ~1-2 s delay)
alive()  { [ -n "${1:-}" ] || return 1; local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
           [ -n "$s" ] && [ "${s:0:1}" != Z ]; }
wait_gone() {  # wait_gone SECONDS PID...
  local t=$(( $1 * 10 )); shift
  while [ $t -gt 0 ]; do
    local any=0; for p in "$@"; do alive "$p" && any=1; done
    [ $any = 0 ] && return 0; sleep 0.1; t=$((t-1))
  done; return 1
}

CTLD=$(pid_of slurmctld); SLURMD=$(pid_of slurmd); MUNGED=$(pid_of munged)

# 1. cancel every job and give them a moment to finish (KillWait=5 in our conf)
if alive "$CTLD" && [ -f "$SLURM_CONF" ]; then
  jobs=$(squeue -h -o %F 2>/dev/null | sort -u)
  if [ -n "$jobs" ]; then
    scancel $jobs 2>/dev/null
    for _ in $(seq 150); do [ -z "$(squeue -h -t PD,R,CG,S,CF 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  # 2. orderly shutdown of slurmctld and slurmd (state gets saved)
  scontrol shutdown >/dev/null 2>&1
fi
wait_gone 10 $CTLD $SLURMD || true
for p in $CTLD $SLURMD; do alive "$p" && kill -TERM "$p"; done
wait_gone 5 $CTLD $SLURMD || for p in $CTLD $SLURMD; do alive "$p" && kill -KILL "$p"; done

# 3. leftovers of this cluster only: slurmstepd whose cwd/fds point into STATE,
#    processes running a job script from STATE/spool, and all their descendants.
seeds=()
for d in /proc/[0-9]*; do
  p=${d#/proc/}; [ "$p" = $$ ] && continue
  comm=$(cat "$d/comm" 2>/dev/null) || continue
  if [ "$comm" = slurmstepd ]; then
    links=$'\n'$(readlink "$d/cwd" "$d"/fd/* 2>/dev/null)
    [[ $links == *$'\n'"$STATE/"* ]] && seeds+=("$p")
  else
    { c=$(tr '\0' ' ' < "$d/cmdline"); } 2>/dev/null || continue
    [[ $c == *"$STATE/spool/slurmd/"* ]] && seeds+=("$p")
  fi
done
if [ ${#seeds[@]} -gt 0 ]; then
  victims=$(ps -e -o pid=,ppid= | awk -v s="${seeds[*]}" '
    { par[$1]=$2; all[NR]=$1 }
    END { n=split(s,a," "); for(i=1;i<=n;i++) v[a[i]]=1
          do { ch=0; for(i in all){p=all[i]; if(!(p in v) && (par[p] in v)){v[p]=1; ch=1}} } while(ch)
          for(p in v) print p }')
  kill -TERM $victims 2>/dev/null; wait_gone 3 $victims || { kill -KILL $victims 2>/dev/null; wait_gone 3 $victims; }
  echo "stop-cluster: killed leftover processes: $(echo $victims)"
fi

# 4. munged
if alive "$MUNGED"; then
  kill -TERM "$MUNGED"; wait_gone 5 "$MUNGED" || kill -KILL "$MUNGED"
fi
rm -f "$RUN"/*.pid
echo "stop-cluster: stopped ($STATE)"
