#!/usr/bin/env bash
# Bring up (or tear down) a one-machine Slurm cluster on Debian 12.
#
#   scripts/slurm-single-node.sh          install if needed, start munge + slurmctld + slurmd,
#                                         wait until the node is idle
#   scripts/slurm-single-node.sh stop     stop slurmd, slurmctld and munged
#   scripts/slurm-single-node.sh status   show what is running and what sinfo says
#
# After "start" you can run, for example:
#   srun --mpi=pmix -n 2 ./mpi_program
#   sbatch --array=0-2 script.sh
#
# It is safe to run more than once: packages already installed are left alone,
# an existing munge key is kept, daemons that are already running are not
# started again, and slurm.conf is only rewritten (and the daemons restarted)
# when its contents would change.
#
# It must run as root. It does not use systemd (containers usually have none):
# the daemons are started directly and tracked through their pid files.
set -euo pipefail

ACTION="${1:-start}"

# Where things live. The state directories sit under /var/spool as usual.
SLURM_CONF=/etc/slurm/slurm.conf
CTLD_STATE=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
SLURM_LOGS=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid

# Debian packages this setup needs.
#  - slurmctld, slurmd, slurm-client: controller, node daemon, user commands (srun, sbatch, ...)
#  - slurm-wlm-basic-plugins: Slurm's plugins, including mpi/pmix (mpi_pmix_v4.so)
#  - libpmix2 + libpmix-dev: the PMIx library that mpi/pmix loads at run time. The plugin
#    dlopen()s the unversioned /usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so, which only
#    libpmix-dev ships; without it `srun --mpi=list` does not offer pmix.
#  - munge: the authentication daemon Slurm uses between its commands and daemons.
PACKAGES=(slurmctld slurmd slurm-client slurm-wlm-basic-plugins libpmix2 libpmix-dev munge)

log() { echo "[slurm-single-node] $*"; }

# True when the pid file names a live process whose command name matches.
# (Checking the name guards against a stale pid file whose pid was reused.)
pid_alive() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(cat "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm") == "$name"* ]]
}

# Stop the process named in a pid file (only that pid), waiting up to 20 s.
stop_by_pidfile() {
    local pidfile=$1 name=$2 pid i
    if ! pid_alive "$pidfile" "$name"; then
        log "$name is not running"
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
        [[ -d /proc/$pid ]] || break
        sleep 0.5
    done
    if [[ -d /proc/$pid ]]; then
        log "$name did not stop after 20 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "this script must run as root" >&2
        exit 1
    fi
}

# 1. Install any missing package (apt-get update only when something is missing).
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    else
        log "packages already installed"
    fi
}

# 2. Make a munge key if there is none, and start munged if it is not running.
start_munge() {
    if [[ ! -s $MUNGE_KEY ]]; then
        log "creating munge key $MUNGE_KEY"
        install -d -o munge -g munge -m 0700 /etc/munge
        mungekey --create --keyfile="$MUNGE_KEY"
    fi
    # munged insists on strict ownership and permissions of its key.
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
    install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge

    if pid_alive "$MUNGE_PID" munged; then
        log "munged already running (pid $(cat "$MUNGE_PID"))"
    else
        log "starting munged"
        # Run it as the munge user, as Debian's service file does. It daemonizes itself.
        runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
    fi
    # Check that a credential can be made and decoded.
    local i
    for i in $(seq 1 20); do
        if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    echo "munge does not work (munge -n | unmunge fails)" >&2
    exit 1
}

# 3. Write slurm.conf for this one node. Returns 0 if the file changed, 1 if not.
write_slurm_conf() {
    local node node_line tmp
    node=$(hostname -s)
    # `slurmd -C` prints the real hardware of this machine, e.g.
    #   NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
    # We use that line as is, so the node definition matches what slurmd will detect.
    node_line=$(slurmd -C | grep '^NodeName=' | head -n 1)
    if [[ -z $node_line ]]; then
        echo "slurmd -C printed no NodeName line" >&2
        exit 1
    fi

    install -d -m 0755 /etc/slurm "$CTLD_STATE" "$SLURMD_SPOOL" "$SLURM_LOGS"

    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Written by scripts/slurm-single-node.sh -- a one-node cluster on this machine.
# Rerunning that script rewrites this file.
ClusterName=single
# The controller runs here; 127.0.0.1 so it works whatever the host name resolves to.
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge

StateSaveLocation=${CTLD_STATE}
SlurmdSpoolDir=${SLURMD_SPOOL}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${SLURM_LOGS}/slurmctld.log
SlurmdLogFile=${SLURM_LOGS}/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818

# No cgroups: track job processes by parent pid, and do no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Hand out cores (memory is not a consumable resource here, so several
# jobs or array tasks can run side by side).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Plain srun launches; use --mpi=pmix for MPI programs.
MpiDefault=none

# No accounting database.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none

SchedulerType=sched/backfill
# A node that was down (e.g. after the daemons were stopped) comes back by itself.
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
# No mail server here; this silences "Configured MailProg is invalid".
MailProg=/bin/true
KillWait=30
MinJobAge=300
Waittime=0

${node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -f $SLURM_CONF ]] && cmp -s "$tmp" "$SLURM_CONF"; then
        rm -f "$tmp"
        log "$SLURM_CONF unchanged"
        return 1
    fi
    install -m 0644 "$tmp" "$SLURM_CONF"
    rm -f "$tmp"
    log "wrote $SLURM_CONF"
    return 0
}

# 4. Start slurmctld and slurmd if they are not running (both daemonize themselves).
start_slurm() {
    if pid_alive "$CTLD_PID" slurmctld; then
        log "slurmctld already running (pid $(cat "$CTLD_PID"))"
    else
        log "starting slurmctld"
        /usr/sbin/slurmctld
    fi
    if pid_alive "$SLURMD_PID" slurmd; then
        log "slurmd already running (pid $(cat "$SLURMD_PID"))"
    else
        log "starting slurmd"
        /usr/sbin/slurmd
    fi
}

# 5. Wait until sinfo shows the node idle (or busy with jobs: mixed/allocated).
wait_for_node() {
    local node state i
    node=$(hostname -s)
    for i in $(seq 1 60); do
        state=$(sinfo -h -N -n "$node" -o '%T' 2>/dev/null || true)
        case $state in
            idle | mixed | allocated | completing)
                log "node $node is $state"
                sinfo
                return 0
                ;;
            *drain* | down*)
                # Left down or drained from an earlier run: put it back in service.
                log "node $node is '$state', resuming it"
                scontrol update NodeName="$node" State=RESUME || true
                ;;
        esac
        sleep 1
    done
    echo "node $node did not become idle in 60 s (state: '${state:-?}'); see $SLURM_LOGS/" >&2
    sinfo >&2 || true
    exit 1
}

do_start() {
    require_root
    install_packages
    start_munge
    if write_slurm_conf; then
        # The configuration changed: daemons already running must restart to pick it up.
        stop_by_pidfile "$SLURMD_PID" slurmd
        stop_by_pidfile "$CTLD_PID" slurmctld
    fi
    start_slurm
    wait_for_node
}

do_stop() {
    require_root
    stop_by_pidfile "$SLURMD_PID" slurmd
    stop_by_pidfile "$CTLD_PID" slurmctld
    stop_by_pidfile "$MUNGE_PID" munged
}

do_status() {
    local f n
    for f in "$MUNGE_PID:munged" "$CTLD_PID:slurmctld" "$SLURMD_PID:slurmd"; do
        n=${f#*:}
        if pid_alive "${f%%:*}" "$n"; then
            echo "$n: running (pid $(cat "${f%%:*}"))"
        else
            echo "$n: not running"
        fi
    done
    sinfo 2>/dev/null || true
}

case $ACTION in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *)
        echo "usage: $0 [start|stop|status]" >&2
        exit 2
        ;;
esac
