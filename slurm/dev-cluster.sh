#!/usr/bin/env bash
# Throwaway single-node Slurm cluster for development and CI (run as root).
#
#   bash slurm/dev-cluster.sh up       # start munged, slurmctld, slurmd; wait for the node to be idle
#   bash slurm/dev-cluster.sh status   # show daemons, sinfo and squeue (exit 0 if up, 1 if not)
#   bash slurm/dev-cluster.sh down     # cancel jobs, stop the daemons, remove state and config
#
# Needs the Debian 12 packages slurmctld slurmd slurm-client munge (Slurm 22.05).
# Config, state, spool, logs and pid files live in $HPC_NST_SLURM_DIR (default /tmp/hpc-nst-slurm).
# The daemons are started with `-f $DIR/slurm.conf`; the client commands (sbatch, squeue, ...) only
# look at /etc/slurm/slurm.conf, so slurm.conf and gres.conf are copied there as well (a foreign
# config already there is moved aside to *.hpc-nst-bak and restored by `down`).
# The node advertises $HPC_NST_SLURM_GPUS (default 2) fake GPUs (Gres=gpu:N, backed by placeholder
# device files) so that `--gres=gpu:1` jobs can be scheduled on a machine without GPUs; jobs get
# CUDA_VISIBLE_DEVICES=0 or 1 as on a real GPU node (harmless without GPUs, but on a machine with a
# single real GPU set HPC_NST_SLURM_GPUS=1 so that no job is pointed at a GPU that does not exist).
set -euo pipefail

DIR="${HPC_NST_SLURM_DIR:-/tmp/hpc-nst-slurm}"
ETC=/etc/slurm
TIMEOUT="${HPC_NST_SLURM_TIMEOUT:-90}"   # seconds to wait for the node to become idle
NGPU="${HPC_NST_SLURM_GPUS:-2}"          # number of fake GPUs the node advertises
NODE="$(hostname -s)"
MARK="# managed by hpc_nst slurm/dev-cluster.sh"

log() { echo "[dev-cluster] $*"; }
die() { echo "[dev-cluster] ERROR: $*" >&2; exit 1; }

# pid_alive FILE: true if FILE holds the pid of a live process (not a zombie awaiting its reaper).
pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    kill -0 "$pid" 2>/dev/null && ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$pid/stat" 2>/dev/null
}

# node_state: compact sinfo state of our node ("idle", "mix", "drain", ...), empty if unreachable.
node_state() { timeout 10 sinfo -h -n "$NODE" -o '%t' 2>/dev/null | head -n1 || true; }

is_up() {
    pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid" \
        && [[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]]
}

# Print the tail of the daemon logs (for failures).
show_logs() {
    local f
    for f in "$DIR"/log/*.log; do
        [[ -f "$f" ]] || continue
        echo "----- tail of $f -----" >&2
        tail -n 25 "$f" >&2
    done
}

write_config() {
    local cpus mem_mb
    cpus="$(nproc)"
    # RealMemory must not exceed what slurmd detects, else the node is drained: use 90 %.
    mem_mb="$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
    mkdir -p "$DIR"/{state,spool,log,gpu}
    # Placeholder GPU "device files": character devices aliasing /dev/null, so slurmd accepts them
    # and exports CUDA_VISIBLE_DEVICES to jobs; plain files (no CUDA_VISIBLE_DEVICES) as fallback.
    local i
    for ((i = 0; i < NGPU; i++)); do
        [[ -e "$DIR/gpu/nvidia$i" ]] || mknod "$DIR/gpu/nvidia$i" c 1 3 2>/dev/null \
            || touch "$DIR/gpu/nvidia$i"
    done
    cat > "$DIR/slurm.conf" <<EOF
$MARK
ClusterName=hpcnst-dev
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=60
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$NGPU State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    # Without File= the node is INVALID ("gres/gpu count reported lower than configured").
    cat > "$DIR/gres.conf" <<EOF
$MARK
AutoDetect=off
NodeName=$NODE Name=gpu File=$DIR/gpu/nvidia[0-$((NGPU - 1))]
EOF
    # Copy into /etc/slurm for the client commands, keeping a foreign config aside.
    mkdir -p "$ETC"
    local f
    for f in slurm.conf gres.conf; do
        if [[ -f "$ETC/$f" ]] && ! grep -qF "$MARK" "$ETC/$f"; then
            log "moving existing $ETC/$f to $ETC/$f.hpc-nst-bak"
            mv "$ETC/$f" "$ETC/$f.hpc-nst-bak"
        fi
        cp "$DIR/$f" "$ETC/$f"
    done
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        log "munged already running"
        return
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    log "starting munged"
    munged --force --pid-file="$DIR/munged.pid" 2>>"$DIR/log/munged.log" \
        || { show_logs; die "munged failed to start"; }
    local i
    for i in $(seq 1 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.5
    done
    die "munge does not work (munge -n | unmunge fails)"
}

# wait_idle: wait until the node is usable; resume it once if it is drained/down.
wait_idle() {
    local deadline=$((SECONDS + TIMEOUT)) state resumed=0
    while ((SECONDS < deadline)); do
        state="$(node_state)"
        # A daemon that exits right away (bad config) will never come up: fail fast.
        if ((SECONDS > deadline - TIMEOUT + 3)); then
            local d
            for d in slurmctld slurmd; do
                pid_alive "$DIR/$d.pid" || { show_logs; die "$d is not running (see logs above)"; }
            done
        fi
        case "$state" in
            idle | mix | alloc) log "node $NODE is $state"; return 0 ;;
            drain* | drng* | down | inval*)
                if ((!resumed)); then
                    log "node $NODE is '$state': resuming it"
                    scontrol update nodename="$NODE" state=resume 2>/dev/null || true
                    resumed=1
                fi ;;
        esac
        sleep 1
    done
    sinfo -N -l >&2 2>/dev/null || true
    scontrol show node "$NODE" >&2 2>/dev/null || true
    show_logs
    die "node $NODE not idle after ${TIMEOUT}s (last state: '${state:-unreachable}')"
}

cmd_up() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    local prog
    for prog in slurmctld slurmd sinfo munged; do
        command -v "$prog" >/dev/null \
            || die "$prog not found: apt-get install -y slurmctld slurmd slurm-client munge"
    done
    if is_up; then
        log "already up (node $NODE is $(node_state)); nothing to do"
        return 0
    fi
    # Half-started or stale: stop whatever is left, then start fresh.
    stop_daemons
    local t0=$SECONDS
    write_config
    start_munge
    log "starting slurmctld"
    slurmctld -f "$DIR/slurm.conf" -i || { show_logs; die "slurmctld failed to start"; }
    log "starting slurmd"
    slurmd -f "$DIR/slurm.conf" || { show_logs; die "slurmd failed to start"; }
    wait_idle
    log "up in $((SECONDS - t0))s (config $DIR/slurm.conf, logs $DIR/log/)"
}

# stop_pid NAME: stop the daemon whose pid is in $DIR/NAME.pid (TERM, then KILL after 10 s).
stop_pid() {
    local f="$DIR/$1.pid" pid i
    pid_alive "$f" || { rm -f "$f"; return 0; }
    pid="$(cat "$f")"
    log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
}

stop_daemons() {
    stop_pid slurmd
    stop_pid slurmctld
    stop_pid munged   # only a munged this script started has its pid file here
}

cmd_down() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    if pid_alive "$DIR/slurmctld.pid"; then
        log "cancelling all jobs"
        timeout 10 scancel --full --user=root 2>/dev/null || true
        timeout 10 scancel --full --state=PENDING 2>/dev/null || true
        # Give slurmd a moment to kill running job steps before it goes away.
        local i
        for i in $(seq 1 10); do
            [[ -z "$(timeout 5 squeue -h -t R,CG 2>/dev/null || true)" ]] && break
            sleep 1
        done
    fi
    stop_daemons
    local f
    for f in slurm.conf gres.conf; do
        if [[ -f "$ETC/$f" ]] && grep -qF "$MARK" "$ETC/$f"; then
            rm -f "$ETC/$f"
        fi
        if [[ -f "$ETC/$f.hpc-nst-bak" ]]; then
            mv "$ETC/$f.hpc-nst-bak" "$ETC/$f"
        fi
    done
    # Only remove a directory that this script populated.
    if [[ -f "$DIR/slurm.conf" ]] && grep -qF "$MARK" "$DIR/slurm.conf"; then
        rm -rf "$DIR"
    fi
    log "down"
}

cmd_status() {
    local name
    for name in munged slurmctld slurmd; do
        if pid_alive "$DIR/$name.pid"; then
            log "$name: running (pid $(cat "$DIR/$name.pid"))"
        else
            log "$name: not running (from $DIR)"
        fi
    done
    if is_up; then
        sinfo
        squeue
        log "status: up"
    else
        log "status: down"
        return 1
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
