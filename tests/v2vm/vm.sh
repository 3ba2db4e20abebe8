#!/bin/sh
# A real cgroup v2 kernel for runner's memory tests: Debian 12's own kernel
# under qemu (no KVM needed), this machine's / shared read-only over 9p with
# a tmpfs overlay on top, and cgroup2 mounted alone.
#
#   vm.sh prepare DIR           the kernel, its modules and an initramfs, in DIR
#                               (taken from the linux-image package with
#                               apt-get download; kept for the next run)
#   vm.sh run DIR SCRIPT ARG... boots, runs `sh SCRIPT ARG...` as root inside,
#                               prints what it prints, powers off; exits with
#                               the script's exit code
#
# The guest sees every file of this machine at its own path (read-only; what
# it writes goes to memory and is gone at power-off). DIR/out is shared
# writable: the script's exit code, and whatever it leaves there.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: vm.sh prepare DIR | vm.sh run DIR SCRIPT ARG...}
dir=${2:?usage: vm.sh prepare DIR | vm.sh run DIR SCRIPT ARG...}
shift 2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# The modules a 9p root with an overlay needs, in the order they load.
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache
9pnet 9pnet_virtio 9p overlay"

prepare() {
  [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.gz" ] && return 0
  package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
  if [ -z "$package" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
  fi
  [ -n "$package" ] || { echo "vm.sh: no linux-image package in apt's lists (apt-get update?)" >&2; exit 1; }
  rm -rf "$dir/kernel" "$dir/initrd" && mkdir -p "$dir/kernel" "$dir/initrd/bin" "$dir/initrd/modules"
  (cd "$dir/kernel" && apt-get download -q "$package" >/dev/null 2>&1 &&
    dpkg-deb --fsys-tarfile ./*.deb | tar -x --wildcards './boot/vmlinuz-*' './lib/modules/*.ko')
  for m in $modules; do
    ko=$(find "$dir/kernel/lib/modules" -name "$m.ko" | head -n 1)
    [ -n "$ko" ] || { echo "vm.sh: module $m is not in $package" >&2; exit 1; }
    cp "$ko" "$dir/initrd/modules/"
  done
  cp "$(command -v busybox)" "$dir/initrd/bin/busybox"
  sed "s/@MODULES@/$(echo $modules)/" "$here/init" > "$dir/initrd/init"
  chmod 755 "$dir/initrd/init"
  (cd "$dir/initrd" && find . | cpio -o -H newc --quiet | gzip -1 > "$dir/initrd.gz")
  cp "$dir"/kernel/boot/vmlinuz-* "$dir/vmlinuz"
  rm -rf "$dir/kernel" "$dir/initrd"
}

run() {
  script=${1:?usage: vm.sh run DIR SCRIPT ARG...}
  script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
  shift
  rm -rf "$dir/out" && mkdir -p "$dir/out"
  # What the guest runs, read by its init from the shared folder.
  { printf 'cd %s\n' "$(pwd)"; printf 'exec sh %s' "$script"
    for a in "$@"; do printf " '%s'" "$a"; done; echo; } > "$dir/out/command"
  # Two CPUs and 3 GiB: the memory tests start clusters of 500 MiB, four at once.
  qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m 3G -nodefaults -no-user-config \
    -display none -serial stdio -no-reboot \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 cgroup_no_v1=all runner_out=$dir/out" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$dir/out",mount_tag=out,security_model=none,multidevs=remap \
    < /dev/null
  if [ ! -f "$dir/out/exit" ]; then
    echo "vm.sh: the guest stopped before its script ended" >&2
    exit 1
  fi
  exit "$(cat "$dir/out/exit")"
}

case $cmd in
  prepare) prepare ;;
  run) prepare; run "$@" ;;
  *) echo "vm.sh: unknown command $cmd" >&2; exit 2 ;;
esac
