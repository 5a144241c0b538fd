# shellcheck shell=bash
# What stack.sh and cluster.sh both need: messages, a port probe, and installing a missing
# server through the system's package manager. Source it after setting SCRIPT_NAME.

APT_UPDATED=""

say() { printf '%s: %s\n' "${SCRIPT_NAME:-local}" "$*" >&2; }
die() { say "error: $*"; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  command -v apt-get >/dev/null || die "$* missing and no apt-get to install it; install it by hand"
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  say "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

nats_bin() {
  command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }
}
