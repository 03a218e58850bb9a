#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for kernellab's SLURM tests (tests/test_slurm.py) and for
# trying `hydra/launcher=slurm` by hand. Debian 12 packages, run as root, no systemd needed.
#
#   scripts/slurm-cluster.sh up       install what is missing, start what is not running, wait for the node
#   scripts/slurm-cluster.sh status   what runs, sinfo, whether sacct answers (exit 1 when not usable)
#   scripts/slurm-cluster.sh down     stop the daemons that `up` started (not those it found running)
#
# The cluster: munged; MariaDB + slurmdbd (accounting, so `sacct` answers: submitit polls it to see
# that a job ended without a result); slurmctld + slurmd on this host (127.0.0.1). Partitions:
#   debug  (default)  every job goes here unless told otherwise; its jobs can be preempted (requeued)
#   urgent            jobs here preempt `debug` jobs (PreemptMode=REQUEUE): the way to try preemption
# The node declares four times this machine's CPUs (SLURM_NODE_CPUS=N to choose), so that jobs
# that mostly wait run side by side instead of queueing.
#
# `up` is idempotent: a second run starts nothing and returns in about a second; slurmctld/slurmd are
# restarted only when the slurm.conf it writes differs from the one in place. Timings go to stdout.
set -euo pipefail

CLUSTER=${SLURM_CLUSTER:-kernellab}
RUN=/run/slurm
STATE=/run/kernellab-slurm # markers: which daemons this script started, for `down`
DBPASS=kernellab-slurmdbd  # MariaDB's slurm user, reachable through the local socket only
PACKAGES="munge slurm-client slurmctld slurmd slurmdbd mariadb-server"

# daemon name -> pid file
declare -A PIDFILE=(
    [munged]=/run/munge/munged.pid
    [mariadbd]=/run/mysqld/mysqld.pid
    [slurmdbd]=$RUN/slurmdbd.pid
    [slurmctld]=$RUN/slurmctld.pid
    [slurmd]=$RUN/slurmd.pid
)
ORDER="munged mariadbd slurmdbd slurmctld slurmd"

T0=$(date +%s.%N)
say() { printf '[%5.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
die() {
    echo "slurm-cluster: $*" >&2
    exit 1
}
running() { [ -s "${PIDFILE[$1]}" ] && kill -0 "$(cat "${PIDFILE[$1]}")" 2>/dev/null; }
started_here() {
    mkdir -p "$STATE"
    touch "$STATE/$1"
}
wait_for() { # wait_for SECONDS COMMAND...: poll every 0.25 s
    local tries=$(($1 * 4))
    shift
    for _ in $(seq 1 "$tries"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    return 1
}
stop() { # stop DAEMON: SIGTERM, then wait up to 30 s for it to go
    running "$1" || return 0
    local pid
    pid=$(cat "${PIDFILE[$1]}")
    kill "$pid"
    for _ in $(seq 1 120); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    die "$1 (pid $pid) did not stop within 30 s"
}
node_state() { sinfo -h -N -n "$(hostname -s)" -o '%T' 2>/dev/null | head -1; }

install_packages() {
    local missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    say "installing$missing"
    # Keep the packages' maintainer scripts from starting the daemons (there is no init system to
    # run them, and this script starts them itself, with its own settings): policy-rc.d says "no".
    local policy=/usr/sbin/policy-rc.d ours=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' >$policy
        chmod 755 $policy
        ours=1
    fi
    # an apt index older than a day may name package versions the mirror no longer has
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
        apt-get update -qq
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        {
            [ $ours = 1 ] && rm -f $policy
            die "apt-get install$missing failed"
        }
    [ $ours = 1 ] && rm -f $policy
    say "installed: $(dpkg-query -W -f='${Package} ${Version}\n' slurmctld slurmdbd mariadb-server munge | paste -sd, - | sed 's/,/, /g')"
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --force 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    if ! running munged; then
        su -s /bin/sh munge -c /usr/sbin/munged # daemonizes, writes its pid file
        started_here munged
    fi
    wait_for 10 sh -c 'munge -n </dev/null | unmunge' || die "munged does not answer (see /var/log/munge/munged.log)"
    say "munged up (pid $(cat "${PIDFILE[munged]}"))"
}

start_mariadb() {
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then # the package's postinst normally does this
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    if ! running mariadbd; then
        # local socket only, small buffers: it holds one tiny accounting database
        nohup /usr/sbin/mariadbd --user=mysql --skip-networking --pid-file="${PIDFILE[mariadbd]}" \
            --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
            >>/var/log/mariadbd-slurm.log 2>&1 </dev/null &
        started_here mariadbd
    fi
    wait_for 60 mariadb -e 'select 1' || die "MariaDB does not answer (see /var/log/mariadbd-slurm.log)"
    mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
                CREATE DATABASE IF NOT EXISTS slurm_acct_db;
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    say "mariadbd up (pid $(cat "${PIDFILE[mariadbd]}"))"
}

start_slurmdbd() {
    local conf
    conf=$(
        cat <<EOF
# written by kernellab's scripts/slurm-cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=${PIDFILE[slurmdbd]}
LogFile=/var/log/slurm/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
    )
    if [ "$conf" != "$(cat /etc/slurm/slurmdbd.conf 2>/dev/null)" ]; then
        stop slurmdbd
        printf '%s\n' "$conf" >/etc/slurm/slurmdbd.conf
    fi
    chmod 600 /etc/slurm/slurmdbd.conf # slurmdbd refuses a config others can read (it holds a password)
    if ! running slurmdbd; then
        slurmdbd
        started_here slurmdbd
    fi
    # the first start creates the tables: a few seconds
    wait_for 60 sacctmgr -n list cluster || die "slurmdbd does not answer (see /var/log/slurm/slurmdbd.log)"
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    say "slurmdbd up (pid $(cat "${PIDFILE[slurmdbd]}"))"
}

node_cpus() { # SLURM_NODE_CPUS, or four times this machine's CPUs
    local cpus=${SLURM_NODE_CPUS:-$((4 * $(nproc)))}
    [[ $cpus =~ ^[1-9][0-9]{0,3}$ ]] || die "SLURM_NODE_CPUS=$cpus: must be a number of CPUs from 1 to 9999"
    echo "$cpus"
}

slurm_conf() {
    local host cpus mem
    host=$(hostname -s)
    # More CPUs than the machine has (SlurmdParameters=config_overrides: slurmd takes the layout
    # below instead of draining the node for a mismatch), so that jobs which wait (paused, polling,
    # starting Python) don't queue behind each other: the SLURM tests run side by side. The kernel
    # shares the real cores between them, as it does for any other processes.
    cpus=$(node_cpus)
    mem=$(($(free -m | awk '/^Mem:/{print $2}') - 1024))
    cat <<EOF
# written by kernellab's scripts/slurm-cluster.sh: a single-node cluster for tests
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
# no cgroups needed (and none usable without systemd in a container)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
SlurmctldPidFile=${PIDFILE[slurmctld]}
SlurmdPidFile=${PIDFILE[slurmd]}
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
# a requeued job waits cred_expire seconds before it may start again (default 120) and then for the
# next scheduling pass (every 30 to 60 s by default): short here, so time-limit/requeue tests are quick
AuthInfo=cred_expire=20
SchedulerParameters=bf_interval=5,sched_interval=5
# a job asking for more than the partition has is refused by sbatch, not left pending forever
EnforcePartLimits=ALL
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
# scontrol requeue, and preemption by the urgent partition, put jobs back in the queue
JobRequeue=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmdTimeout=300
InactiveLimit=0
MinJobAge=300
# SIGTERM at cancel/time limit/preemption, then SIGKILL this many seconds later
KillWait=30
Waittime=0
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE
PartitionName=urgent Nodes=ALL Default=NO MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
}

write_slurm_conf() { # before slurmdbd: sacctmgr finds slurmdbd through slurm.conf
    local conf
    conf=$(slurm_conf)
    if [ "$conf" != "$(cat /etc/slurm/slurm.conf 2>/dev/null)" ]; then
        # a running daemon keeps the config it started with: restart both with the new one
        stop slurmd
        stop slurmctld
        printf '%s\n' "$conf" >/etc/slurm/slurm.conf
        chmod 644 /etc/slurm/slurm.conf
        say "wrote /etc/slurm/slurm.conf"
    fi
}

start_slurm() {
    if ! running slurmctld; then
        slurmctld
        started_here slurmctld
    fi
    if ! running slurmd; then
        slurmd
        started_here slurmd
    fi
    local host state resumed=0
    host=$(hostname -s)
    for _ in $(seq 1 240); do # up to 60 s
        state=$(node_state || true)
        case "$state" in
        idle | mixed | allocated | completing) break ;;
        drained | draining | down)
            if [ $resumed = 0 ]; then # e.g. left drained by an earlier config: give it back
                scontrol update nodename="$host" state=resume 2>/dev/null || true
                resumed=1
            fi
            ;;
        esac
        sleep 0.25
    done
    case "$state" in
    idle | mixed | allocated | completing) ;;
    *)
        sinfo >&2 || true
        tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        die "node $host is '${state:-not answering}', not idle"
        ;;
    esac
    say "slurmctld pid $(cat "${PIDFILE[slurmctld]}"), slurmd pid $(cat "${PIDFILE[slurmd]}"), node $host: $state"
}

up() {
    [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
    node_cpus >/dev/null # a bad SLURM_NODE_CPUS: before anything is stopped or written
    install_packages
    mkdir -p /etc/slurm $RUN /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    start_munge
    start_mariadb
    write_slurm_conf
    start_slurmdbd
    start_slurm
    sinfo
    say "cluster '$CLUSTER' up"
}

down() {
    local d stopped=""
    for d in slurmd slurmctld slurmdbd mariadbd munged; do
        if [ -e "$STATE/$d" ]; then
            if running "$d"; then
                stop "$d"
                stopped="$stopped $d"
            fi
            rm -f "$STATE/$d"
        fi
    done
    say "stopped:${stopped:- nothing (no daemon started by this script is running)}"
}

status() {
    local d ok=0 state
    for d in $ORDER; do
        if running "$d"; then
            echo "$d: running (pid $(cat "${PIDFILE[$d]}"))$([ -e "$STATE/$d" ] && echo ', started by this script')"
        else
            echo "$d: not running"
            ok=1
        fi
    done
    state=$(node_state || true)
    echo "node $(hostname -s): ${state:-no answer from slurmctld}"
    case "$state" in idle | mixed | allocated | completing) ;; *) ok=1 ;; esac
    if sacct -n -X -S now-1minutes >/dev/null 2>&1; then echo "sacct: answers"; else
        echo "sacct: no answer"
        ok=1
    fi
    [ $ok = 0 ] && sinfo
    return $ok
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
