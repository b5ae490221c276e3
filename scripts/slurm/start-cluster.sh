#!/usr/bin/env bash
# start-cluster.sh STATE_DIR
# Starts a self-contained one-node SLURM cluster (munged + slurmctld + slurmd)
# without systemd. Everything (key, config, spool, logs, pids, sockets) lives
# under STATE_DIR. Must run as root (SlurmUser=root, slurmd needs root).
# Env overrides: SLURM_LAB_CPUS (default: nproc), SLURM_LAB_MEM_MB (default 1024),
#   SLURM_LAB_CTLD_PORT (6817), SLURM_LAB_SLURMD_PORT (6818),
#   SLURM_LAB_TIMEOUT (seconds to wait for the node to become idle, default 60),
#   SLURM_LAB_KEEP_STATE=1 (recover the job queue saved by the previous run).
# After it returns:  export SLURM_CONF=STATE_DIR/etc/slurm.conf   (or: source STATE_DIR/env.sh)
set -euo pipefail

die() { echo "start-cluster: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 STATE_DIR"
[ "$(id -u)" = 0 ] || die "must run as root"
for b in munged slurmctld slurmd sinfo scontrol; do
  command -v "$b" >/dev/null || die "$b not found (apt-get install -y slurm-wlm munge)"
done

T0=$(date +%s.%N)
STATE=$(realpath -m "$1")
HOST=$(hostname -s)
CPUS=${SLURM_LAB_CPUS:-$(nproc)}
MEM=${SLURM_LAB_MEM_MB:-1024}
CTLD_PORT=${SLURM_LAB_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LAB_SLURMD_PORT:-6818}
TIMEOUT=${SLURM_LAB_TIMEOUT:-60}

ETC=$STATE/etc; MUNGE=$STATE/munge; LOG=$STATE/log; RUN=$STATE/run
mkdir -p "$ETC" "$MUNGE" "$LOG" "$RUN" "$STATE/spool/slurmd" "$STATE/spool/ctld"
chmod 755 "$STATE" "$ETC" "$LOG" "$RUN"
chmod 711 "$MUNGE"          # socket must be reachable, key must not be

# a daemon of THIS cluster is running: pid file -> live (non-zombie) process whose
# command line mentions STATE (guards against pid reuse)
alive() {
  local p; p=$(cat "$1" 2>/dev/null) || return 1; [ -n "$p" ] || return 1
  local s; s=$(ps -o stat= -p "$p" 2>/dev/null) || return 1
  local c; { c=$(tr '\0' ' ' < "/proc/$p/cmdline"); } 2>/dev/null || return 1
  [ "${s:0:1}" != Z ] && [[ $c == *"$STATE/"* ]]
}
for p in munged slurmctld slurmd; do
  alive "$RUN/$p.pid" && die "$p already running (pid $(cat "$RUN/$p.pid")); run stop-cluster.sh $STATE first"
done
# leftovers of a crashed run (stale pid files, orphaned slurmstepd/jobs): sweep them
if ls "$RUN"/*.pid >/dev/null 2>&1 && [ -x "$(dirname "$0")/stop-cluster.sh" ]; then
  "$(dirname "$0")/stop-cluster.sh" "$STATE" >&2 || true
fi
rm -f "$RUN"/*.pid "$MUNGE/munge.socket" "$MUNGE/munge.socket.lock"

# ---- munge -----------------------------------------------------------------
if [ ! -s "$MUNGE/munge.key" ]; then
  dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 status=none
fi
chown root:root "$MUNGE/munge.key"; chmod 400 "$MUNGE/munge.key"
# --force: accept running as root and a state dir under a world-writable /tmp
munged --force \
  --key-file="$MUNGE/munge.key" --socket="$MUNGE/munge.socket" \
  --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
  --seed-file="$MUNGE/munged.seed" \
  || die "munged failed, see $LOG/munged.log"
for _ in $(seq 50); do [ -S "$MUNGE/munge.socket" ] && break; sleep 0.1; done
munge -n -S "$MUNGE/munge.socket" | unmunge -S "$MUNGE/munge.socket" >/dev/null \
  || die "munge self-test failed, see $LOG/munged.log"

# ---- config ----------------------------------------------------------------
cat > "$ETC/slurm.conf" <<CONF
ClusterName=lab
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
ReturnToService=2
SlurmdParameters=config_overrides
MailProg=/bin/true
KillWait=5
MinJobAge=60
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
chmod 644 "$ETC/slurm.conf"
echo "export SLURM_CONF=$ETC/slurm.conf" > "$STATE/env.sh"
export SLURM_CONF=$ETC/slurm.conf

# ---- daemons -----------------------------------------------------------------
# -c: start with an empty job queue (no jobs resurrected from a previous run;
#     job ids keep counting up). SLURM_LAB_KEEP_STATE=1 keeps the saved queue instead.
CLEAR=-c; [ "${SLURM_LAB_KEEP_STATE:-0}" = 1 ] && CLEAR=
slurmctld -f "$SLURM_CONF" $CLEAR || die "slurmctld failed, see $LOG/slurmctld.log"
slurmd -f "$SLURM_CONF" -N "$HOST" || die "slurmd failed, see $LOG/slurmd.log"

deadline=$(( $(date +%s) + TIMEOUT ))
state=""
while :; do
  state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)
  case "$state" in idle|idle\~) break ;; esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "start-cluster: node not idle after ${TIMEOUT}s (state='$state')" >&2
    tail -n 20 "$LOG/slurmctld.log" "$LOG/slurmd.log" >&2 || true
    exit 1
  fi
  case "$state" in down*|drain*|fail*)   # e.g. stale DOWN state from a previous crash
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.2
done
T1=$(date +%s.%N)
awk -v a="$T0" -v b="$T1" -v h="$HOST" -v c="$CPUS" \
  'BEGIN{printf "start-cluster: node %s idle (%s CPUs) after %.2fs\n", h, c, b-a}'
echo "export SLURM_CONF=$SLURM_CONF"
