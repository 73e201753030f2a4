#!/usr/bin/env bash
# watchdog.sh OWNER_PID OWNER_START NAME RUN_DIR
# Started by `cluster.sh start` when FLIGHTDECK_CLUSTER_OWNER_PID is set (as
# with-cluster.sh does): once the owner process is gone, even if it was killed
# with SIGKILL and never ran its trap, stop the cluster so no apiserver, etcd
# or controller manager outlives the test run that started it. If the owner
# recorded its work's process group in RUN_DIR/owner-group ("PGID STARTTIME",
# as with-cluster.sh does for CMD), that group is ended first.
set -uo pipefail
owner=$1 owner_start=$2 name=$3 run_dir=$4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=process.sh
. "$here/process.sh"
while [ "$(proc_start_time "$owner" 2>/dev/null)" = "$owner_start" ]; do
  sleep 1
done
echo "owner $owner exited; stopping cluster $name"
if read -r pgid pgid_start <"$run_dir/owner-group" 2>/dev/null && [ "$(proc_start_time "$pgid")" = "$pgid_start" ]; then
  echo "ending the owner's process group $pgid"
  kill -TERM -- "-$pgid" 2>/dev/null
  for _ in $(seq 1 100); do group_running "$pgid" || break; sleep 0.1; done
  kill -KILL -- "-$pgid" 2>/dev/null
fi
FLIGHTDECK_CLUSTER_NAME=$name FLIGHTDECK_CLUSTER_RUN_DIR=$run_dir FLIGHTDECK_CLUSTER_FROM_WATCHDOG=1 \
  exec "$here/../cluster.sh" stop
