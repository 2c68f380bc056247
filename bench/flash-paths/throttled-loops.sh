#!/usr/bin/env bash
# Several "SSDs" on one machine for bench placement --real: N loop devices (sparse files under
# $ROOT), each with an ext4 file system mounted at $ROOT/ssdI, each held to a set bandwidth by the
# kernel's block throttle (cgroup v2 io.max where the io controller is enabled, else cgroup v1
# blkio.throttle.*_bps_device), which applies to the O_DIRECT I/O of processes in the cgroup.
#   bench/flash-paths/throttled-loops.sh up N RATE [SIZE]   e.g. up 4 200MB 3G   (RATE: bytes/s; K/M/G suffixes, decimal)
#   bench/flash-paths/throttled-loops.sh run CMD...        runs CMD inside the throttled cgroup
#   bench/flash-paths/throttled-loops.sh paths             prints the mount points, comma-separated
#   bench/flash-paths/throttled-loops.sh down
# Needs root. Everything it makes is listed in $ROOT/state and removed by `down`.
set -euo pipefail
ROOT="${ROOT:-/var/tmp/hifc-loops}"
NAME=hifc-loops
v2=/sys/fs/cgroup/unified; [ -e /sys/fs/cgroup/cgroup.controllers ] && v2=/sys/fs/cgroup

bytes() { numfmt --from=si "${1%B}"; }

cgroup_dir() {
    if [ -e "$v2/cgroup.controllers" ] && grep -qw io "$v2/cgroup.controllers"; then echo "$v2/$NAME v2"
    elif [ -d /sys/fs/cgroup/blkio ]; then echo "/sys/fs/cgroup/blkio/$NAME v1"
    else echo "none"; fi
}

case "${1:-}" in
up)
    n="$2"; rate=$(bytes "$3"); size="${4:-3G}"
    mkdir -p "$ROOT"; : > "$ROOT/state"
    read -r dir kind < <(cgroup_dir)
    [ "$dir" = none ] && { echo "no cgroup io controller here: use bench placement --limit-bandwidth (the in-process stand-in)"; exit 1; }
    mkdir -p "$dir"
    [ "$kind" = v2 ] && echo "+io" > "$(dirname "$dir")/cgroup.subtree_control" 2>/dev/null || true
    for i in $(seq 0 $((n - 1))); do
        img="$ROOT/ssd$i.img"; mnt="$ROOT/ssd$i"
        truncate -s "$size" "$img"
        dev=$(losetup -f --show --direct-io=on "$img")
        mkfs.ext4 -q -F "$dev"; mkdir -p "$mnt"; mount -o noatime "$dev" "$mnt"
        echo "$dev $mnt $img" >> "$ROOT/state"
        majmin=$(lsblk -ndo MAJ:MIN "$dev" | tr -d ' ')
        if [ "$kind" = v2 ]; then
            echo "$majmin rbps=$rate wbps=$rate" > "$dir/io.max"
        else
            echo "$majmin $rate" > "$dir/blkio.throttle.read_bps_device"
            echo "$majmin $rate" > "$dir/blkio.throttle.write_bps_device"
        fi
        echo "ssd$i: $dev at $mnt, $3/s each way ($kind throttle)"
    done
    echo "$dir" > "$ROOT/cgroup"
    ;;
run)
    shift; dir=$(cat "$ROOT/cgroup")
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$dir" "$@"
    ;;
paths)
    awk '{print $2}' "$ROOT/state" | paste -sd, -
    ;;
down)
    [ -f "$ROOT/state" ] || exit 0
    while read -r dev mnt img; do umount "$mnt" || true; losetup -d "$dev" || true; rm -f "$img"; rmdir "$mnt" || true; done < "$ROOT/state"
    [ -f "$ROOT/cgroup" ] && rmdir "$(cat "$ROOT/cgroup")" 2>/dev/null || true
    rm -f "$ROOT/state" "$ROOT/cgroup"
    ;;
*)
    sed -n '2,11p' "$0"; exit 2 ;;
esac
