#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for testing `sharedrep run --executor slurm`
# (tests/test_slurm_executor.py). Debian's slurm-wlm and munge, installed if missing; run as root.
#
#   scripts/slurm-local.sh start    install if needed, write the config, start munged, slurmctld, slurmd
#   scripts/slurm-local.sh stop     stop the three daemons
#   scripts/slurm-local.sh status   sinfo
#
# The config (/etc/slurm/slurm.conf) has one node, this host, with its CPUs and memory, in one partition
# `debug`; no accounting database (the kit's SLURM executor does not need sacct), no cgroups (containers).
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm

say() { echo "[slurm-local] $*"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "[slurm-local] error: must run as root (it installs packages and starts system daemons)" >&2
    exit 2
  fi
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_config() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # leave 512 MB to the machine; slurmd refuses a node that claims more memory than it has
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 512 ))
  mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" "$RUN"
  cat >"$CONF_DIR/slurm.conf" <<EOF
# written by scripts/slurm-local.sh: one node, this host
ClusterName=sharedrep-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerParameters=sched_interval=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
# without a default, a job that asks no memory holds the whole node's: one job at a time
DefMemPerCPU=$(( mem / cpus ))
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if pgrep -x munged >/dev/null; then return; fi
  mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  chmod 0700 /etc/munge
  if id munge >/dev/null 2>&1; then
    su -s /bin/sh munge -c "munged" 2>/dev/null || munged --force
  else
    munged --force
  fi
}

start() {
  need_root
  install_packages
  write_config
  start_munge
  if pgrep -x slurmctld >/dev/null; then
    scontrol reconfigure  # running already: read the config just written
  else
    slurmctld -c  # -c: no state from an earlier run (jobs of a stopped session)
  fi
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 30); do  # the node registers within seconds
    if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
      say "up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %t' | tr '\n' ' ')"
      return
    fi
    sleep 1
  done
  scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
  if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
    say "up: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %t' | tr '\n' ' ')"
    return
  fi
  echo "[slurm-local] error: the node did not come up; see $LOGS/slurmctld.log and $LOGS/slurmd.log" >&2
  exit 1
}

stop_daemon() {  # by the pid file the daemon wrote, not by name
  local pidfile=$1 pid
  if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do  # until it has exited, so that a start right after starts a fresh one
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    rm -f "$pidfile"
  fi
}

stop() {
  need_root
  stop_daemon "$RUN/slurmd.pid"
  stop_daemon "$RUN/slurmctld.pid"
  stop_daemon /run/munge/munged.pid
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
