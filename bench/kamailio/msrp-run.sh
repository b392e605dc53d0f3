#!/bin/sh
# Start the reference MSRP relay (bench/kamailio/msrp.cfg) in the foreground.
#
#   bench/kamailio/msrp-run.sh TLS_PORT TCP_PORT CERT KEY SCRATCH_DIR [extra kamailio args…]
#
# TCP_PORT may be 0 (or "-") for no plain-TCP listener. Everything binds to
# 127.0.0.1 only. SCRATCH_DIR (created if missing) holds the pid file and is
# Kamailio's runtime and working dir. The script execs Kamailio, so the pid of this
# process is Kamailio's main pid: SIGTERM to it stops all the children.
# Logs go to stderr. Environment: KAM_MSRP_USER, KAM_MSRP_PASS (AUTH
# credentials, defaults msrptest / msrptest-secret), KAM_LOGLEVEL (0),
# KAM_TCP_WORKERS (-N, default 2), KAM_SHM_MB (-m, shared memory, default
# 256; it holds the write queues), KAMAILIO (binary, /usr/sbin/kamailio).
set -eu
if [ $# -lt 5 ]; then
	echo "usage: $0 TLS_PORT TCP_PORT CERT KEY SCRATCH_DIR [kamailio args...]" >&2
	exit 2
fi
tls_port=$1 tcp_port=$2 cert=$3 key=$4 dir=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case $cert in /*) ;; *) cert=$(pwd)/$cert ;; esac
case $key in /*) ;; *) key=$(pwd)/$key ;; esac
for f in "$cert" "$key"; do
	[ -r "$f" ] || { echo "$0: cannot read $f" >&2; exit 2; }
done

set -- -l "tls:127.0.0.1:$tls_port" "$@"
if [ "$tcp_port" != 0 ] && [ "$tcp_port" != - ]; then
	set -- -l "tcp:127.0.0.1:$tcp_port" "$@"
fi
set -- -A "KAM_TLS_CERT=\"$cert\"" -A "KAM_TLS_KEY=\"$key\"" "$@"
[ -n "${KAM_MSRP_USER:-}" ] && set -- -A "KAM_MSRP_USER=\"$KAM_MSRP_USER\"" "$@"
[ -n "${KAM_MSRP_PASS:-}" ] && set -- -A "KAM_MSRP_PASS=\"$KAM_MSRP_PASS\"" "$@"
[ -n "${KAM_LOGLEVEL:-}" ] && set -- -A "KAM_LOGLEVEL=$KAM_LOGLEVEL" "$@"

exec "${KAMAILIO:-/usr/sbin/kamailio}" -f "$here/msrp.cfg" -u root -g root \
	-DD -E -w "$dir" -Y "$dir" -P "$dir/kamailio.pid" -N "${KAM_TCP_WORKERS:-2}" \
	-m "${KAM_SHM_MB:-256}" "$@"
