#!/bin/sh
# Entrypoint of the Molecule images that run systemd and an inner dockerd (scenarios docker and release). Docker mounts /sys/fs/cgroup and
# /proc/sys read-only in unprivileged containers; systemd and the inner dockerd
# need to write there. CAP_SYS_ADMIN allows bind-remounting them read-write,
# which stands in for --privileged (refused by this engine).
set -eu
mount -o remount,rw /sys/fs/cgroup
sed -n 's/^[^ ]* [^ ]* [^ ]* [^ ]* \([^ ]*\) .* - cgroup2\{0,1\} .*/\1/p' /proc/self/mountinfo |
  while read -r mnt; do
    mount -o remount,bind,rw "$mnt"
  done
# The inner dockerd (26.x) writes per-interface IPv6 sysctls for its containers.
mount -o remount,bind,rw /proc/sys
if [ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ]; then
  # cgroup v1 host: systemd 256+ refuses v1 unless forced. In a container
  # systemd reads these switches from its own command line.
  exec /lib/systemd/systemd systemd.unified_cgroup_hierarchy=0 SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1
fi
exec /lib/systemd/systemd
