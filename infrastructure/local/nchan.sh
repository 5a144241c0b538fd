#!/usr/bin/env bash
# `make bench-fanout-nchan`'s peer: nginx with the nchan module from Debian's packages
# (nginx-light and libnginx-mod-nchan), installed with apt-get when absent. The package's own
# service is never started here (nor enabled: Debian's policy-rc.d in containers refuses it);
# the benchmark writes a throwaway config in a temp dir and runs nginx itself on a free port.
#
#   nchan.sh install   install if missing, then print the nginx binary and the module's path
set -euo pipefail

SCRIPT_NAME=nchan.sh
# shellcheck source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so

install() {
  { [ -x /usr/sbin/nginx ] && [ -f "$MODULE" ]; } || apt_install nginx-light libnginx-mod-nchan
  [ -f "$MODULE" ] || die "nchan module not found at $MODULE after install"
  printf 'NGINX_BIN=%s\nNCHAN_MODULE=%s\n' /usr/sbin/nginx "$MODULE"
}

case "${1:-}" in
  install) install ;;
  *) die "usage: $0 install" ;;
esac
