#!/bin/sh
# Runs a command in fresh mount and PID namespaces (started by `unshare -m -p -f`), chrooted
# into a root that holds only what the submission needs, read-only: the system directories,
# the Python installation, the grader's child-side packages and the submission. The
# reference, the rest of the project, /tmp and every other copy on the machine are simply
# not there. It has its own /proc (it cannot see or signal the grader) and a private,
# writable scratch directory.
#
# Usage: sandbox.sh SCRATCH VISIBLE[:VISIBLE...] HIDDEN[:HIDDEN...] -- COMMAND...
set -e
scratch=$1; visible=$2; hidden=$3; shift 4

root=/mnt
mount -t tmpfs -o size=16m,mode=755 none "$root"
mkdir -p "$root/proc" "$root/dev" "$root/tmp"
mount -t tmpfs -o size=64m,mode=1777 none "$root/tmp"
for dir in /usr /bin /sbin /lib /lib32 /lib64 /libx32 /etc $(echo "$visible" | tr ':' ' '); do
    [ -e "$dir" ] || continue
    mkdir -p "$root$dir"
    mount --rbind "$dir" "$root$dir"
    mount -o remount,bind,ro "$root$dir"
done
for dir in $(echo "$hidden" | tr ':' ' '); do
    [ -d "$root$dir" ] && mount -t tmpfs -o ro,size=4k none "$root$dir"
done
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o size=256m,mode=777 none "$root$scratch"
# Not exec'd as PID 1, which would ignore signals the command sends itself.
chroot "$root" /bin/sh -c 'cd "$0" && "$@"' "$scratch" "$@"
