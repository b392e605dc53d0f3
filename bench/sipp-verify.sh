#!/usr/bin/env bash
# bench/sipp-verify.sh: proves every SIPp scenario of sip/testdata/sipp
# against Kamailio 5.6 + msilo (bench/kamailio/kamailio.cfg) over UDP, TCP
# and TLS (SIPp has no TLS: it speaks TCP to a socat that wraps it in TLS).
#
#   bench/sipp-verify.sh            # SQLite store (no PostgreSQL needed)
#   VERIFY_DB=pg bench/sipp-verify.sh
#
# Two server runs: the first challenges every REGISTER and MESSAGE (digest),
# the second takes MESSAGEs from 127.0.0.1 unauthenticated (-A MSG_NOAUTH),
# as the store benchmark does. Checks, per transport:
#   register.xml        200 after the 401, binding (with +sip.instance) in the
#                       location table; a wrong password fails
#   message.xml         MESSAGE with digest to an unregistered user: 202, one
#                       row in silo with the body byte for byte
#   message_inf.xml     pairs and digests from a CSV: one row per call
#   register_recv.xml + ooc_message.xml
#                       3 MESSAGEs queued, the device registers and receives
#                       all 3 (answered 200), logged with time stamps
#   register_load.xml   REGISTER load from a CSV, every call 200
#   message_noauth.xml  fails (407) on the first server, stores on the second
# Servers, socat and SIPp run on 127.0.0.1 only and are stopped at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIPP_DIR="$ROOT/sip/testdata/sipp"
KAM_CFG="$ROOT/bench/kamailio/kamailio.cfg"
KAM_SQL="${KAM_SQL:-/usr/share/kamailio}"
VERIFY_DB=${VERIFY_DB:-sqlite}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=${VERIFY_SCHEMA:-kam_verify}
PORT=${VERIFY_PORT:-5090}         # Kamailio UDP+TCP; TLS on PORT+1
SOCAT_PORT=$((PORT + 2))          # socat: TCP in, TLS out to PORT+1
SIPP_PORT=${VERIFY_SIPP_PORT:-5190}
PW=verifypass1
D=127.0.0.1
BODY="CAST(body AS TEXT)" # silo.body is a BLOB / BYTEA
[[ $VERIFY_DB == pg ]] && BODY="convert_from(body, 'UTF8')"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sipp-verify.XXXXXX")
GROUPS_STARTED=()
cleanup() {
	local rc=$? g
	trap - EXIT INT TERM
	for g in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
	sleep 0.5
	for g in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
	if [[ $VERIFY_DB == pg && $rc == 0 ]]; then
		psql -X -q "$PGURL" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" || true
	fi
	if [[ $rc == 0 ]]; then echo "all checks passed; logs in $WORK"; else echo "FAILED; logs in $WORK" >&2; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASS=0
ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }

q() { # SQL on the Kamailio store
	if [[ $VERIFY_DB == pg ]]; then
		PGOPTIONS="-c search_path=$SCHEMA" psql -X -q -A -t -v ON_ERROR_STOP=1 "$PGURL" -c "$1"
	else
		sqlite3 "$WORK/kam.sqlite" "$1"
	fi
}

setup_db() {
	local f
	if [[ $VERIFY_DB == pg ]]; then
		psql -X -q -v ON_ERROR_STOP=1 "$PGURL" -c "SET client_min_messages = warning" \
			-c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "CREATE SCHEMA $SCHEMA"
		for f in standard auth_db usrloc msilo; do
			PGOPTIONS="-c search_path=$SCHEMA" psql -X -q -v ON_ERROR_STOP=1 "$PGURL" -f "$KAM_SQL/postgres/$f-create.sql" >/dev/null
		done
		DBURL="$PGURL"
	else
		for f in standard auth_db usrloc msilo; do sqlite3 "$WORK/kam.sqlite" <"$KAM_SQL/db_sqlite/$f-create.sql"; done
		sqlite3 "$WORK/kam.sqlite" 'PRAGMA journal_mode=WAL;' >/dev/null
		DBURL="sqlite://$WORK/kam.sqlite"
	fi
	local u
	for u in alice bob carol dave erin frank u1 u2 u3 u4; do
		q "INSERT INTO subscriber (username, domain, password) VALUES ('$u', '$D', '$PW')"
	done
}

KAM_PGID=
start_kamailio() { # [extra -A defines]
	# db_sqlite sets no busy timeout: two Kamailio processes writing at
	# once get "database is locked", so one worker per transport on SQLite
	local drv=WITH_SQLITE workers=1
	[[ $VERIFY_DB == pg ]] && drv=WITH_PGSQL workers=2
	mkdir -p "$WORK/run"
	PGOPTIONS="-c search_path=$SCHEMA" setsid kamailio -f "$KAM_CFG" -DD -E -Y "$WORK/run" \
		-l "udp:127.0.0.1:$PORT" -l "tcp:127.0.0.1:$PORT" -l "tls:127.0.0.1:$((PORT + 1))" \
		-n "$workers" -N "$workers" -A "$drv" -A "KAM_DBURL=\"$DBURL\"" -A "KAM_SELF=\"sip:127.0.0.1:$PORT\"" -A WITH_TLS \
		-A "KAM_TLS_CERT=\"$WORK/cert.pem\"" -A "KAM_TLS_KEY=\"$WORK/key.pem\"" "$@" \
		</dev/null >>"$WORK/kamailio.log" 2>&1 &
	KAM_PGID=$!
	GROUPS_STARTED+=("$KAM_PGID")
	local i
	for i in $(seq 100); do
		kill -0 "$KAM_PGID" 2>/dev/null || fail "kamailio exited: $(tail -5 "$WORK/kamailio.log")"
		ss -Hlnt "sport = :$((PORT + 1))" | grep -q . && { sleep 1; return 0; }
		sleep 0.1
	done
	fail "kamailio did not start"
}

stop_kamailio() {
	kill -TERM -- "-$KAM_PGID" 2>/dev/null || true
	local i
	for i in $(seq 50); do kill -0 -- "-$KAM_PGID" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL -- "-$KAM_PGID" 2>/dev/null || true
}

# sipp_to TRANSPORT NAME ARGS…: SIPp against Kamailio; udp and tcp go
# straight to it, tls goes through socat. Returns SIPp's status.
sipp_to() {
	local tr=$1 name=$2
	shift 2
	local dst="127.0.0.1:$PORT" t=u1
	case $tr in
	tcp) t=t1 ;;
	tls) t=t1 dst="127.0.0.1:$SOCAT_PORT" ;;
	esac
	sipp "$dst" -t "$t" -i 127.0.0.1 -nostdin -timeout 20s \
		-trace_msg -message_file "$WORK/$name.msg.log" \
		-trace_err -error_file "$WORK/$name.err.log" "$@" >"$WORK/$name.screen.txt" 2>&1
}

command -v sipp >/dev/null || fail "sipp (sip-tester) is not installed"
command -v kamailio >/dev/null || fail "kamailio is not installed"
command -v socat >/dev/null || fail "socat is not installed"
for p in $PORT $((PORT + 1)) $SOCAT_PORT; do
	ss -Hlntu "sport = :$p" | grep -q . && fail "port $p is in use"
done

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
	-days 2 -subj "/CN=127.0.0.1" >/dev/null 2>&1
setup_db

setsid socat "TCP-LISTEN:$SOCAT_PORT,bind=127.0.0.1,reuseaddr,fork" \
	"OPENSSL:127.0.0.1:$((PORT + 1)),verify=0" </dev/null >"$WORK/socat.log" 2>&1 &
GROUPS_STARTED+=("$!")

echo "== server 1: digest on REGISTER and MESSAGE ($VERIFY_DB)"
start_kamailio
n=0
for tr in udp tcp tls; do
	n=$((n + 1))
	sp=$((SIPP_PORT + 10 * n))
	# rows are never deleted here: SQLite would hand out the ids again, and
	# msilo skips ids it still has in its list of sent messages

	sipp_to "$tr" "reg_$tr" -sf "$SIPP_DIR/register.xml" -p "$sp" -m 1 -key user alice -key domain "$D" \
		-key expires 300 -au alice -ap "$PW" -set instance "urn:uuid:00000000-0000-4000-8000-00000000000$n" ||
		fail "$tr register.xml"
	inst=$(q "SELECT instance FROM location WHERE username = 'alice'")
	[[ $inst == "<urn:uuid:00000000-0000-4000-8000-00000000000$n>" ]] || fail "$tr register.xml: instance '$inst'"
	sock=$(q "SELECT socket FROM location WHERE username = 'alice'")
	[[ $sock == "$tr:127.0.0.1:"* ]] || fail "$tr register.xml: received on '$sock'"
	ok "$tr register.xml (401 then 200; +sip.instance stored; received on $sock)"

	if sipp_to "$tr" "regbad_$tr" -sf "$SIPP_DIR/register.xml" -p "$sp" -m 1 -key user bob -key domain "$D" \
		-key expires 300 -au bob -ap wrong-password; then
		fail "$tr register.xml with a wrong password succeeded"
	fi
	ok "$tr register.xml with a wrong password fails"

	sipp_to "$tr" "unreg_$tr" -sf "$SIPP_DIR/register.xml" -p "$sp" -m 1 -key user alice -key domain "$D" \
		-key expires 0 -au alice -ap "$PW" || fail "$tr un-register"
	[[ $(q "SELECT count(*) FROM location WHERE username = 'alice'") == 0 ]] || fail "$tr un-register left a binding"
	ok "$tr register.xml -key expires 0 removes the binding"

	body="héllo $tr; byte for byte"
	sipp_to "$tr" "msg_$tr" -sf "$SIPP_DIR/message.xml" -p "$sp" -m 1 -key user bob -key to alice \
		-key domain "$D" -key body "$body" -au bob -ap "$PW" || fail "$tr message.xml"
	grep -q '^SIP/2.0 407' "$WORK/msg_$tr.msg.log" || fail "$tr message.xml: no 407 challenge seen"
	got=$(q "SELECT count(*) FROM silo WHERE username = 'alice' AND $BODY = '$body'")
	[[ $got == 1 ]] || fail "$tr message.xml: $got rows with the body byte for byte"
	ok "$tr message.xml (407, digest, 202; body stored byte for byte)"

	printf 'SEQUENTIAL\nu1;u2;[authentication username=u1 password=%s]\nu3;u4;[authentication username=u3 password=%s]\n' \
		"$PW" "$PW" >"$WORK/pairs.csv"
	sipp_to "$tr" "inf_$tr" -sf "$SIPP_DIR/message_inf.xml" -p "$sp" -m 4 -r 20 -inf "$WORK/pairs.csv" \
		-key domain "$D" -key body "inf $tr" || fail "$tr message_inf.xml"
	[[ $(q "SELECT count(*) FROM silo WHERE username IN ('u2', 'u4') AND $BODY = 'inf $tr'") == 4 ]] ||
		fail "$tr message_inf.xml: rows"
	[[ $(q "SELECT count(*) FROM silo WHERE src_addr = 'sip:u3@$D' AND dst_addr = 'sip:u4@$D' AND $BODY = 'inf $tr'") == 2 ]] ||
		fail "$tr message_inf.xml: pairs"
	ok "$tr message_inf.xml (per-line sender, recipient and digest)"

	printf 'SEQUENTIAL\nu1;u2\n' >"$WORK/noauth.csv"
	if sipp_to "$tr" "noauth1_$tr" -sf "$SIPP_DIR/message_noauth.xml" -p "$sp" -m 1 -inf "$WORK/noauth.csv" \
		-key domain "$D" -key body x; then
		fail "$tr message_noauth.xml was not challenged"
	fi
	ok "$tr message_noauth.xml fails when challenged"

	for i in 1 2 3; do
		sipp_to "$tr" "q${i}_$tr" -sf "$SIPP_DIR/message.xml" -p "$sp" -m 1 -key user dave -key to carol \
			-key domain "$D" -key body "queued $i" -au dave -ap "$PW" || fail "$tr queue $i"
	done
	sipp_to "$tr" "recv_$tr" -sf "$SIPP_DIR/register_recv.xml" -oocsf "$SIPP_DIR/ooc_message.xml" \
		-p "$((sp + 1))" -m 1 -d 1500 -key user carol -key domain "$D" -key expires 300 -au carol -ap "$PW" \
		-trace_logs -log_file "$WORK/recv_$tr.log" || fail "$tr register_recv.xml"
	got=$(grep -c '^msg ' "$WORK/recv_$tr.log" || true)
	[[ $got == 3 ]] || fail "$tr register_recv.xml: $got MESSAGEs received, want 3"
	grep -q '^register ' "$WORK/recv_$tr.log" || fail "$tr register_recv.xml: no register line"
	grep -q "From: <sip:dave@$D>" "$WORK/recv_$tr.log" || fail "$tr ooc_message.xml: From not logged"
	[[ $(q "SELECT count(*) FROM location WHERE username = 'carol'") == 0 ]] || fail "$tr register_recv.xml did not un-register"
	ok "$tr register_recv.xml + ooc_message.xml (3 stored MESSAGEs delivered, answered, logged; un-registered)"

	# (u2 and u4 have stored MESSAGEs: Kamailio dumps them to the load
	# client, which drops them; that is not what is checked here)
	{
		echo SEQUENTIAL
		for u in u1 u2 u3 u4; do echo "$u;[authentication username=$u password=$PW]"; done
	} >"$WORK/users.csv"
	sipp_to "$tr" "load_$tr" -sf "$SIPP_DIR/register_load.xml" -p "$((sp + 2))" -m 20 -r 100 -l 4 \
		-inf "$WORK/users.csv" -key domain "$D" -key expires 300 || fail "$tr register_load.xml"
	[[ $(q "SELECT count(DISTINCT username) FROM location WHERE username LIKE 'u%'") == 4 ]] ||
		fail "$tr register_load.xml: bindings"
	sipp_to "$tr" "unload_$tr" -sf "$SIPP_DIR/register_load.xml" -p "$((sp + 2))" -m 4 -r 100 -l 4 \
		-inf "$WORK/users.csv" -key domain "$D" -key expires 0 || fail "$tr register_load.xml expires 0"
	[[ $(q "SELECT count(*) FROM location WHERE username LIKE 'u%'") == 0 ]] || fail "$tr register_load.xml: un-register"
	ok "$tr register_load.xml (20 digest REGISTERs over 4 users, then -key expires 0)"
done
stop_kamailio

echo "== server 2: MESSAGEs from 127.0.0.1 unauthenticated (-A MSG_NOAUTH)"
start_kamailio -A MSG_NOAUTH
n=0
for tr in udp tcp tls; do
	n=$((n + 1))
	sp=$((SIPP_PORT + 10 * n))
	printf 'SEQUENTIAL\nu1;u2\nu3;u4;ignored\n' >"$WORK/noauth.csv"
	sipp_to "$tr" "noauth2_$tr" -sf "$SIPP_DIR/message_noauth.xml" -p "$sp" -m 10 -r 50 -inf "$WORK/noauth.csv" \
		-key domain "$D" -key body "noauth $tr" || fail "$tr message_noauth.xml"
	[[ $(q "SELECT count(*) FROM silo WHERE $BODY = 'noauth $tr'") == 10 ]] || fail "$tr message_noauth.xml: rows"
	ok "$tr message_noauth.xml (10 stored, no challenge)"
done
echo "$PASS checks"
