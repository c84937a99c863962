#!/usr/bin/env bash
# Debian packages the build and the tests need, installed when missing:
# busybox-static (test rootfs), procps (ps), protobuf-compiler (the CRI
# client's generated code), containerd, podman, docker.io, catatonit (the
# pause image) and containernetworking-plugins (CNI, for the CRI test);
# qemu-system-x86, mmdebstrap, e2fsprogs and cpio build and boot the pure
# cgroup v2 guest (scripts/guest-image.sh, tests/guest.rs); runc and crun
# are the other runtimes the engine drives and the bench compares; uidmap
# (newuidmap/newgidmap), passt (pasta) and fuse-overlayfs are what
# rootless capsa uses.
set -euo pipefail
need=()
for p in uidmap passt fuse-overlayfs runc crun busybox-static procps protobuf-compiler containerd podman docker.io catatonit containernetworking-plugins docker-registry skopeo umoci apache2-utils openssl nftables iproute2 qemu-system-x86 mmdebstrap e2fsprogs cpio; do
    # Installed, not merely known: a removed package keeps its config
    # files, and `dpkg -s` then still succeeds.
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Rootless networking (pasta) opens /dev/net/tun as the user, and
# fuse-overlayfs /dev/fuse. udev's default rules make both 0666; a host
# without udev (this VM) leaves the kernel's 0600, so set what udev would.
for dev in /dev/net/tun /dev/fuse; do
    if [ -c "$dev" ] && [ "$(stat -c %a "$dev")" != 666 ]; then
        chmod 666 "$dev"
    fi
done
