#!/usr/bin/env bash
# The pure cgroup v2 guest of issue 15: Debian 12 with systemd as PID 1,
# built from Debian's packages with mmdebstrap and cached outside the repo.
#
#   scripts/guest-image.sh [CACHE]      build it unless the cache is current
#
# CACHE (default $CAPSA_GUEST_CACHE or /var/cache/capsa-guest) receives:
#   root.img     ext4 root filesystem (booted with snapshot=on: never changed)
#   vmlinuz      Debian's linux-image-amd64 kernel (the full flavour: 9p)
#   initrd.img   a small initramfs: busybox, the virtio and ext4 modules,
#                and an init that mounts /dev/vda and hands over to systemd
#   recipe       the hash of this script: a cache made by another recipe is
#                rebuilt
set -euo pipefail
cache=${1:-${CAPSA_GUEST_CACHE:-/var/cache/capsa-guest}}
recipe=$(sha256sum "$0" | cut -d' ' -f1)
if [[ -f $cache/recipe && $(cat "$cache/recipe") == "$recipe" ]]; then
    echo "guest image: $cache is current"
    exit 0
fi
for tool in mmdebstrap mkfs.ext4 cpio qemu-system-x86_64; do
    command -v "$tool" >/dev/null || {
        echo "guest image: $tool is missing (scripts/deps.sh installs it)" >&2
        exit 1
    }
done
work=$(mktemp -d /var/tmp/capsa-guest.XXXXXX)
[[ -n ${CAPSA_GUEST_KEEP:-} ]] || trap 'rm -rf "$work"' EXIT
root=$work/root
packages=systemd,systemd-sysv,dbus,udev,iproute2,kmod,procps,qemu-guest-agent,busybox-static,runc,crun,containerd,catatonit,iptables,ca-certificates,uidmap,libpam-systemd
echo "guest image: mmdebstrap bookworm ($packages)"
mmdebstrap --quiet --variant=apt --include="$packages" \
    --customize-hook='echo capsa-guest > "$1/etc/hostname"' \
    --customize-hook='echo "/dev/vda / ext4 rw,discard 0 1" > "$1/etc/fstab"' \
    --customize-hook='echo "capsa /capsa 9p trans=virtio,version=9p2000.L,msize=1048576,nofail 0 0" >> "$1/etc/fstab"' \
    --customize-hook='mkdir -p "$1/capsa"' \
    --customize-hook='passwd --root "$1" -d root' \
    bookworm "$root" http://deb.debian.org/debian

# The kernel: the full amd64 flavour (the cloud one has no 9p), unpacked
# into the root for its modules, the image itself kept beside.
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
(cd "$work" && apt-get download -q "$kpkg" >/dev/null)
# Unpacked aside: the package's ./lib would replace the root's /lib link.
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
kver=${kpkg#linux-image-}
mkdir -p "$root/usr/lib/modules"
cp -a "$work/kernel/lib/modules/$kver" "$root/usr/lib/modules/"
chroot "$root" /sbin/depmod "$kver"
echo "guest image: kernel $kver"

# The initramfs: load what reaching the root needs, mount it, switch.
init=$work/initrd
mkdir -p "$init"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$root/bin/busybox" "$init/bin/busybox"
mods=()
for m in virtio_pci virtio_blk ext4; do
    while read -r kind path _; do
        [[ $kind == insmod ]] || continue
        [[ " ${mods[*]} " == *" $path "* ]] || mods+=("$path")
    done < <(chroot "$root" /sbin/modprobe -S "$kver" --show-depends "$m")
done
[[ ${#mods[@]} -gt 0 ]] || { echo "guest image: no modules found for the initramfs" >&2; exit 1; }
: > "$init/modules"
for p in "${mods[@]}"; do
    cp "$root$p" "$init/lib/modules/"
    echo "/lib/modules/$(basename "$p")" >> "$init/modules"
done
cat > "$init/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
while read -r m; do /bin/busybox insmod "$m" 2>/dev/null; done < /modules
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
/bin/busybox mount -t ext4 -o rw /dev/vda /newroot || exec /bin/busybox sh
/bin/busybox umount /proc /sys
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /sbin/init
INIT
chmod 0755 "$init/init"
(cd "$init" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.img"

mkdir -p "$cache"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
mkfs.ext4 -q -L capsa-guest -d "$root" "$work/root.img" 3G
for f in root.img vmlinuz initrd.img; do mv "$work/$f" "$cache/$f"; done
echo "$recipe" > "$cache/recipe"
echo "guest image: built in $cache"
