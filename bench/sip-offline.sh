#!/usr/bin/env bash
# bench/sip-offline.sh: the offline-MESSAGE store benchmark, cairn against
# Kamailio 5.6 + msilo, driven by SIPp, side by side on one machine.
#
#   bench/sip-offline.sh [TARGET...]
#
# TARGET is kamailio-pg, kamailio-sqlite, cairn-pg or cairn-sqlite (default:
# all four). Every server is started here, on 127.0.0.1 only, and stopped at
# exit (its own process group, by pid). Per target:
#   (c) REGISTER-with-digest rate: SIPp register_load.xml, closed loop with
#       REG_LIMIT registrations in flight for REG_SECS, and the CPU time per
#       REGISTER counted as in (b); afterwards every user is un-registered
#       again (checked: no binding may remain);
#   (a) store saturation: MESSAGE (message_noauth.xml) to unregistered users,
#       closed loop with L in flight for SAT_SECS, for each L in SAT_LIMITS;
#       stored/s = 2xx / elapsed; the rows added to the store are counted
#       and must be >= the 2xx count (every 2xx durable);
#   (b) fixed rate: FIXED_RATE MESSAGEs/s for FIXED_SECS, CPU time of the
#       server process(es) plus PostgreSQL (the server's backends, found by
#       application_name, plus the cluster's auxiliary processes: walwriter,
#       checkpointer, …) from /proc/PID/stat utime+stime, per stored message;
#       when a phase ran before it, it starts SETTLE_SECS later, once the
#       transactions of that phase have ended (Timer J: 32 s over UDP);
#   (d) drain: DRAIN_MSGS MESSAGEs queued for one user, then a SIPp device
#       (register_recv.xml + ooc_message.xml) registers; time from its first
#       REGISTER to the DRAIN_MSGS-th MESSAGE received, over UDP and TCP.
# One markdown table at the end; raw logs stay in $OUT (a temp dir).
#
# Senders are not authenticated on either server (MSG_AUTH=0, the default):
# Kamailio runs with -A MSG_NOAUTH, cairn lists 127.0.0.1 in sip.trusted.
# MSG_AUTH=1 authenticates every MESSAGE on both (one 407 round trip each).
#
# Needs: sipp (sip-tester), kamailio + kamailio-postgres-modules +
# kamailio-sqlite-modules, sqlite3, psql (postgresql-client), go (cairn),
# PostgreSQL reachable as PGURL (trust auth). Knobs: see "settings" below.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/bench/sip-offline.sh"
SIPP_DIR="$ROOT/sip/testdata/sipp"
KAM_CFG="$ROOT/bench/kamailio/kamailio.cfg"
KAM_SQL="${KAM_SQL:-/usr/share/kamailio}"

# ---- settings (environment) -------------------------------------------------
USERS=${USERS:-1000}                 # recipients u0001…, also the senders
PASSWORD=${PASSWORD:-benchpass1}     # every user's password (cairn: >= 8 bytes)
DOMAIN=127.0.0.1
SIP_PORT=${SIP_PORT:-5060}           # the server under test (UDP and TCP)
SIPP_PORT=${SIPP_PORT:-5170}         # SIPp's local ports: SIPP_PORT..+4
SAT_LIMITS=${SAT_LIMITS:-"50 200 500"}
SAT_SECS=${SAT_SECS:-15}
FIXED_RATE=${FIXED_RATE:-500}      # must stay below every target's saturation
FIXED_SECS=${FIXED_SECS:-20}
SETTLE_SECS=${SETTLE_SECS:-35}       # pause before the fixed rate, after another phase
REG_LIMIT=${REG_LIMIT:-200}
REG_SECS=${REG_SECS:-15}
DRAIN_MSGS=${DRAIN_MSGS:-1000}
DRAIN_HOLD_MS=${DRAIN_HOLD_MS:-5000}
DRAIN_TRANSPORTS=${DRAIN_TRANSPORTS:-"u1 t1"}
MSG_AUTH=${MSG_AUTH:-0}
PHASES=${PHASES:-"register saturation fixed drain"}  # a subset runs only those
BODY=${BODY:-"offline store benchmark: a short text/plain chat message of about a hundred bytes..."}
KAM_CHILDREN=${KAM_CHILDREN:-8}      # UDP workers, PostgreSQL target
KAM_SQLITE_CHILDREN=${KAM_SQLITE_CHILDREN:-1}  # UDP workers, SQLite target
KAM_TCP_CHILDREN=${KAM_TCP_CHILDREN:-2}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
KAM_SCHEMA=${KAM_SCHEMA:-kam_bench}
CAIRN_SCHEMA=${CAIRN_SCHEMA:-cairn_bench}
CAIRN_BIN=${CAIRN_BIN:-}             # prebuilt cairn; default: go build
CAIRN_HTTP=${CAIRN_HTTP:-127.0.0.1:18080}
TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-1500} # seconds for the whole run
KEEP_DB=${KEEP_DB:-0}                # 1: keep the PostgreSQL schema of each target
OUT=${OUT:-}

ALL_TARGETS="kamailio-pg kamailio-sqlite cairn-pg cairn-sqlite"
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---- process bookkeeping: only what this script started ----------------------
GROUPS_STARTED=()   # process-group ids of servers (started with setsid)
PIDS_STARTED=()     # plain child pids (sipp runs, target workers, watchdog)

cleanup() {
	local rc=$? g p i
	trap - EXIT INT TERM
	for p in "${PIDS_STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for g in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
	for i in $(seq 50); do
		local alive=0
		for g in "${GROUPS_STARTED[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
		for p in "${PIDS_STARTED[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[[ $alive == 0 ]] && break
		sleep 0.1
	done
	for g in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
	for p in "${PIDS_STARTED[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	# a target's own schema goes once its server is gone (never "public")
	if [[ -n ${DROP_SCHEMA:-} && $KEEP_DB != 1 ]]; then
		psql -X -q "$PGURL" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $DROP_SCHEMA CASCADE" >/dev/null 2>&1 || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
set -E
trap 'log "failed (status $?) at line $LINENO: $BASH_COMMAND"' ERR

forget_pid() {
	local p=$1 i
	for i in "${!PIDS_STARTED[@]}"; do
		[[ ${PIDS_STARTED[$i]} == "$p" ]] && unset "PIDS_STARTED[$i]"
	done
	PIDS_STARTED=("${PIDS_STARTED[@]}")
}

# run_wait CMD…: runs CMD in the background and waits for it, so that a
# signal reaches the trap at once (bash defers traps while a foreground
# child runs). Returns CMD's status.
run_wait() {
	"$@" &
	local p=$!
	PIDS_STARTED+=("$p")
	local rc=0
	wait "$p" || rc=$?
	forget_pid "$p"
	return "$rc"
}

# ---- PostgreSQL helpers --------------------------------------------------------
psqlc() { psql -X -q -v ON_ERROR_STOP=1 "$PGURL" "$@"; }
psqlv() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$PGURL" "$@"; }

port_free() {
	! ss -Hlnu "sport = :$SIP_PORT" | grep -q . && ! ss -Hlnt "sport = :$SIP_PORT" | grep -q .
}

# ---- SIPp --------------------------------------------------------------------
# sipp_run NAME SECS SIPP-ARGS…: one SIPp run against the server, bounded by
# SECS (-timeout) and writing its statistics to $TDIR/NAME.stat.csv.
sipp_run() {
	local name=$1 secs=$2
	shift 2
	run_wait sipp "127.0.0.1:$SIP_PORT" -i 127.0.0.1 -nostdin -timeout "${secs}s" \
		-trace_stat -stf "$TDIR/$name.stat.csv" -fd 1 \
		-trace_err -error_file "$TDIR/$name.err.log" \
		"$@" >"$TDIR/$name.screen.txt" 2>&1 || true
}

# sipp_stat NAME COLUMN: a column of the last line of a -trace_stat file.
# Columns used: SuccessfulCall(C) FailedCall(C) Retransmissions(C), and
# "elapsed": CurrentTime - StartTime in seconds (microsecond resolution).
sipp_stat() {
	local f="$TDIR/$1.stat.csv" col=$2
	[[ -s $f ]] || { echo 0; return; }
	awk -F';' -v col="$col" '
		NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; next }
		{ last = $0 }
		END {
			n = split(last, v, ";")
			if (col == "elapsed") {
				split(v[idx["StartTime"]], a, "\t"); split(v[idx["CurrentTime"]], b, "\t")
				printf "%.3f\n", b[3] - a[3]
			} else print v[idx[col]] + 0
		}' "$f"
}

# ---- CPU accounting --------------------------------------------------------------
# ticks PID…: "PID TICKS" (utime+stime, /proc/PID/stat fields 14 and 15).
# Builtins only: this runs over every process of the machine.
ticks() {
	local p s f
	for p in "$@"; do
		{ read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
		s=${s##*) } # after "pid (comm) " the fields start at 3
		read -r -a f <<<"$s"
		echo "$p $((f[11] + f[12]))"
	done
}

# group_pids PGID: the processes of a process group (field 5 of stat).
group_pids() {
	local g=$1 st s f
	for st in /proc/[0-9]*/stat; do
		{ read -r s <"$st"; } 2>/dev/null || continue
		s=${s##*) }
		read -r -a f <<<"$s"
		if [[ ${f[2]} == "$g" ]]; then st=${st#/proc/}; echo "${st%/stat}"; fi
	done
	return 0
}

# cpu_snapshot FILE: ticks of the server's processes and of PostgreSQL's
# (the server's client backends by application_name, and the auxiliary
# processes), one "class pid ticks" line each.
cpu_snapshot() {
	local out=$1
	: >"$out"
	ticks $(group_pids "$SERVER_PGID") | sed 's/^/server /' >>"$out"
	if [[ $ENGINE == pg ]]; then
		local be aux
		be=$(psqlv -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$APPNAME'")
		aux=$(psqlv -c "SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'")
		ticks $be | sed 's/^/pgbackend /' >>"$out"
		ticks $aux | sed 's/^/pgaux /' >>"$out"
	fi
}

# cpu_delta BEFORE AFTER CLASS: ticks spent by CLASS between two snapshots;
# a pid only in AFTER started during the run and counts whole. Prints
# "TICKS LOST" where LOST is the number of pids that exited in between.
cpu_delta() {
	awk -v cls="$3" '
		FNR == NR { if ($1 == cls) before[$2] = $3; next }
		$1 == cls { sum += $3 - ($2 in before ? before[$2] : 0); seen[$2] = 1 }
		END { lost = 0; for (p in before) if (!(p in seen)) lost++; print sum + 0, lost }
	' "$1" "$2"
}

# ---- data sets -------------------------------------------------------------------
# Users u0001…uUSERS receive (and send) the stored MESSAGEs and make the
# REGISTER load; d0001 and d0002 are the drain devices. The SIPp CSVs:
#   pairs.csv         SENDER;RECIPIENT;AUTH   (u_i -> u_{i+USERS/2})
#   users.csv         USER;AUTH
#   drain_dNNNN.csv   SENDER;dNNNN;AUTH
make_csvs() {
	local d
	awk -v n="$USERS" -v pw="$PASSWORD" 'BEGIN {
		print "SEQUENTIAL"
		for (i = 1; i <= n; i++) {
			j = (i + int(n / 2) - 1) % n + 1
			printf "u%04d;u%04d;[authentication username=u%04d password=%s]\n", i, j, i, pw
		}
	}' >"$OUT/pairs.csv"
	awk -v n="$USERS" -v pw="$PASSWORD" 'BEGIN {
		print "SEQUENTIAL"
		for (i = 1; i <= n; i++) printf "u%04d;[authentication username=u%04d password=%s]\n", i, i, pw
	}' >"$OUT/users.csv"
	for d in d0001 d0002; do
		awk -v n="$USERS" -v pw="$PASSWORD" -v d="$d" 'BEGIN {
			print "SEQUENTIAL"
			for (i = 1; i <= n; i++) printf "u%04d;%s;[authentication username=u%04d password=%s]\n", i, d, i, pw
		}' >"$OUT/drain_$d.csv"
	done
}

all_users() {
	awk -v n="$USERS" 'BEGIN { for (i = 1; i <= n; i++) printf "u%04d\n", i; print "d0001"; print "d0002" }'
}

# ---- Kamailio ----------------------------------------------------------------
kam_setup() {
	local sqlfiles="standard auth_db usrloc msilo" f
	if [[ $ENGINE == pg ]]; then
		psqlc -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $KAM_SCHEMA CASCADE" -c "CREATE SCHEMA $KAM_SCHEMA"
		DROP_SCHEMA=$KAM_SCHEMA
		for f in $sqlfiles; do
			PGOPTIONS="-c search_path=$KAM_SCHEMA" psqlc -f "$KAM_SQL/postgres/$f-create.sql" >/dev/null
		done
		all_users | awk -v d="$DOMAIN" -v p="$PASSWORD" '{ print $1 "\t" d "\t" p }' |
			PGOPTIONS="-c search_path=$KAM_SCHEMA" psqlc -c "\\copy subscriber (username, domain, password) FROM pstdin"
		KAM_DBURL="$PGURL"
	else
		local db="$TDIR/kamailio.sqlite"
		rm -f "$db" "$db-wal" "$db-shm"
		for f in $sqlfiles; do sqlite3 "$db" <"$KAM_SQL/db_sqlite/$f-create.sql"; done
		# WAL + synchronous=FULL (the library default), as cairn runs SQLite;
		# journal_mode=WAL stays set in the file
		sqlite3 "$db" 'PRAGMA journal_mode=WAL;' >/dev/null
		{
			echo 'BEGIN;'
			all_users | awk -v d="$DOMAIN" -v p="$PASSWORD" \
				'{ printf "INSERT INTO subscriber (username, domain, password) VALUES (%c%s%c, %c%s%c, %c%s%c);\n", 39, $1, 39, 39, d, 39, 39, p, 39 }'
			echo 'COMMIT;'
		} | sqlite3 "$db"
		KAM_DBURL="sqlite://$db"
	fi
}

kam_start() {
	local children=$KAM_CHILDREN drv=WITH_PGSQL
	local tchildren=$KAM_TCP_CHILDREN
	# db_sqlite sets no busy timeout: concurrent writers fail with "database
	# is locked", so the SQLite target runs few writers (see the settings)
	if [[ $ENGINE == sqlite ]]; then children=$KAM_SQLITE_CHILDREN tchildren=1 drv=WITH_SQLITE; fi
	local defs=(-A "$drv" -A "KAM_DBURL=\"$KAM_DBURL\"" -A "KAM_SELF=\"sip:127.0.0.1:$SIP_PORT\"")
	[[ $MSG_AUTH == 1 ]] || defs+=(-A MSG_NOAUTH)
	mkdir -p "$TDIR/kamailio.run"
	echo "kamailio -n $children -N $tchildren ${defs[*]}" >"$TDIR/server.cmd"
	APPNAME=kamailio-bench
	PGOPTIONS="-c search_path=$KAM_SCHEMA" PGAPPNAME=$APPNAME \
		setsid kamailio -f "$KAM_CFG" -DD -E -Y "$TDIR/kamailio.run" -P "$TDIR/kamailio.pid" \
		-l "udp:127.0.0.1:$SIP_PORT" -l "tcp:127.0.0.1:$SIP_PORT" \
		-n "$children" -N "$tchildren" -m 512 -M 16 "${defs[@]}" \
		</dev/null >"$TDIR/server.log" 2>&1 &
	SERVER_PGID=$!
	GROUPS_STARTED+=("$SERVER_PGID")
	local i
	for i in $(seq 100); do
		kill -0 "$SERVER_PGID" 2>/dev/null || die "kamailio exited: $(tail -5 "$TDIR/server.log")"
		if ss -Hlnu "sport = :$SIP_PORT" | grep -q .; then
			sleep 1 # children open their database connections
			return 0
		fi
		sleep 0.1
	done
	die "kamailio did not listen on $SIP_PORT within 10 s"
}

kam_rows() { # [USER]: stored messages (all, or one recipient's)
	local where=""
	[[ -n ${1:-} ]] && where="WHERE username = '$1'"
	if [[ $ENGINE == pg ]]; then
		psqlv -c "SELECT count(*) FROM $KAM_SCHEMA.silo $where"
	else
		sqlite3 "$TDIR/kamailio.sqlite" "SELECT count(*) FROM silo $where"
	fi
}

# kam_settle USER: msilo deletes delivered rows from a timer (check_time,
# 10 s here, one DELETE per row); wait for it, so that it does not compete
# with the next phase (on SQLite a concurrent writer fails at once).
kam_settle() {
	local i
	for i in $(seq 30); do
		[[ $(kam_rows "$1") == 0 ]] && return 0
		sleep 1
	done
	log "$TARGET: msilo still holds $(kam_rows "$1") rows of $1 after 30 s"
}

kam_bindings() { # usrloc db_mode 1 deletes the row of a removed binding
	if [[ $ENGINE == pg ]]; then
		psqlv -c "SELECT count(*) FROM $KAM_SCHEMA.location"
	else
		sqlite3 "$TDIR/kamailio.sqlite" "SELECT count(*) FROM location"
	fi
}

# ---- cairn ---------------------------------------------------------------------
cairn_build() {
	if [[ -n $CAIRN_BIN ]]; then return 0; fi
	CAIRN_BIN="$OUT/cairn"
	if [[ ! -x $CAIRN_BIN ]]; then
		log "building cairn"
		(cd "$ROOT" && go build -o "$CAIRN_BIN" ./cmd/cairn) >"$OUT/cairn-build.log" 2>&1 ||
			die "go build ./cmd/cairn failed: $(tail -5 "$OUT/cairn-build.log")"
	fi
}

cairn_setup() {
	cairn_build
	local data="$TDIR/data" db=""
	rm -rf "$data"
	mkdir -p "$data"
	APPNAME=cairn-bench
	if [[ $ENGINE == pg ]]; then
		psqlc -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $CAIRN_SCHEMA CASCADE" -c "CREATE SCHEMA $CAIRN_SCHEMA"
		DROP_SCHEMA=$CAIRN_SCHEMA
		local sep='?'
		[[ $PGURL == *\?* ]] && sep='&'
		db="$PGURL${sep}sslmode=disable&search_path=$CAIRN_SCHEMA&application_name=$APPNAME"
	fi
	# sip.trusted: MESSAGEs from 127.0.0.1 need no digest (as -A MSG_NOAUTH on
	# Kamailio); offline.max_messages/max_bytes 0: no per-user quota, as msilo
	# (max_messages 0) has none: the default (1000 messages) would refuse
	# stores once a fast run has put 1000 in one inbox
	local trusted='[]'
	[[ $MSG_AUTH == 1 ]] || trusted='["127.0.0.1"]'
	CFG="$TDIR/cairn.json"
	cat >"$CFG" <<-EOF
	{
	  "data_dir": "$data",
	  "db": "$db",
	  "http": {"listen": "$CAIRN_HTTP", "tls_listen": ""},
	  "sip": {"udp": "127.0.0.1:$SIP_PORT", "tcp": "127.0.0.1:$SIP_PORT", "tls": "", "ws": "", "wss": "",
	          "domains": ["$DOMAIN"], "trusted": $trusted},
	  "offline": {"stored_status": 200, "max_messages": 0, "max_bytes": 0},
	  "msrp": {"tls": "", "wss": ""}
	}
	EOF
	# the first add creates the tables alone; the rest four at a time (each
	# add is a process that opens the store: ~0.1 s)
	local first
	first=$(all_users | sed -n 1p) # (head would end awk with SIGPIPE: pipefail)
	printf '%s\n' "$PASSWORD" | "$CAIRN_BIN" user add "$first@$DOMAIN" -password-stdin --config "$CFG" \
		>>"$TDIR/users.log" 2>&1 || die "cairn user add $first failed: $(tail -3 "$TDIR/users.log")"
	all_users | tail -n +2 |
		xargs -P 4 -n 1 sh -c 'printf "%s\n" "$1" | "$2" user add "$5@$3" -password-stdin --config "$4"' _ \
			"$PASSWORD" "$CAIRN_BIN" "$DOMAIN" "$CFG" >>"$TDIR/users.log" 2>&1 ||
		die "cairn user add failed: $(tail -3 "$TDIR/users.log")"
	local n
	n=$(cairn_sql "SELECT count(*) FROM accounts")
	[[ $n == "$((USERS + 2))" ]] || die "cairn has $n accounts, want $((USERS + 2))"
}

cairn_start() {
	echo "cairn serve --config $CFG" >"$TDIR/server.cmd"
	setsid "$CAIRN_BIN" serve --config "$CFG" </dev/null >"$TDIR/server.log" 2>&1 &
	SERVER_PGID=$!
	GROUPS_STARTED+=("$SERVER_PGID")
	local i
	for i in $(seq 300); do
		kill -0 "$SERVER_PGID" 2>/dev/null || die "cairn exited: $(tail -5 "$TDIR/server.log")"
		if grep -q 'msg=listening.*protocol=sip-udp' "$TDIR/server.log"; then
			sleep 0.5
			return 0
		fi
		sleep 0.1
	done
	die "cairn did not log msg=listening protocol=sip-udp within 30 s"
}

cairn_sql() {
	if [[ $ENGINE == pg ]]; then
		PGOPTIONS="-c search_path=$CAIRN_SCHEMA" psqlv -c "$1"
	else
		sqlite3 "$TDIR/data/cairn.db" "$1"
	fi
}

cairn_rows() {
	if [[ -n ${1:-} ]]; then
		cairn_sql "SELECT count(*) FROM offline_messages m JOIN accounts a ON a.id = m.account_id WHERE a.username = '$1'"
	else
		cairn_sql "SELECT count(*) FROM offline_messages"
	fi
}

cairn_settle() { :; }

cairn_bindings() {
	cairn_sql "SELECT count(*) FROM registrations"
}

# ---- the phases -------------------------------------------------------------------
msg_scenario() {
	if [[ $MSG_AUTH == 1 ]]; then echo "$SIPP_DIR/message_inf.xml"; else echo "$SIPP_DIR/message_noauth.xml"; fi
}

result() { echo "$1=$2" >>"$TDIR/result.env"; }

# cpu_results PHASE N: from the snapshots $TDIR/cpu.PHASE.{before,after},
# the CPU ms per operation (N of them) of the server, of PostgreSQL and of
# both, as PHASE_cpu_{server,pg,total}_ms.
cpu_results() {
	local phase=$1 n=$2 srv be aux lost1 lost2 lost3
	local before="$TDIR/cpu.$phase.before" after="$TDIR/cpu.$phase.after"
	read -r srv lost1 < <(cpu_delta "$before" "$after" server)
	read -r be lost2 < <(cpu_delta "$before" "$after" pgbackend)
	read -r aux lost3 < <(cpu_delta "$before" "$after" pgaux)
	result "${phase}_cpu_ticks" "server=$srv pgbackend=$be pgaux=$aux lost_pids=$((lost1 + lost2 + lost3)) clk_tck=$CLK_TCK"
	result "${phase}_cpu_pids" "$(awk '{ n[$1]++ } END { printf "server=%d pgbackend=%d pgaux=%d", n["server"], n["pgbackend"], n["pgaux"] }' "$after")"
	per() { awk -v t="$1" -v n="$n" -v hz="$CLK_TCK" 'BEGIN { printf "%.4f", (n > 0 ? t * 1000 / hz / n : 0) }'; }
	result "${phase}_cpu_server_ms" "$(per "$srv")"
	result "${phase}_cpu_pg_ms" "$(per "$((be + aux))")"
	result "${phase}_cpu_total_ms" "$(per "$((srv + be + aux))")"
}

phase_register() {
	log "$TARGET: REGISTER with digest, $REG_LIMIT in flight, ${REG_SECS}s"
	cpu_snapshot "$TDIR/cpu.reg.before"
	sipp_run register "$((REG_SECS))" -sf "$SIPP_DIR/register_load.xml" -inf "$OUT/users.csv" \
		-t u1 -p "$((SIPP_PORT + 2))" -r 100000 -l "$REG_LIMIT" -m 100000000 \
		-key domain "$DOMAIN" -key expires 3600
	cpu_snapshot "$TDIR/cpu.reg.after"
	local ok el
	ok=$(sipp_stat register 'SuccessfulCall(C)')
	el=$(sipp_stat register elapsed)
	cpu_results reg "$ok"
	result reg_ok "$ok"
	result reg_failed "$(sipp_stat register 'FailedCall(C)')"
	result reg_rate "$(awk -v n="$ok" -v t="$el" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')"
	# un-register every user (one pass over the CSV), so that MESSAGEs to
	# them are stored, not relayed
	sipp_run unregister 60 -sf "$SIPP_DIR/register_load.xml" -inf "$OUT/users.csv" \
		-t u1 -p "$((SIPP_PORT + 2))" -r 100000 -l 50 -m "$USERS" \
		-key domain "$DOMAIN" -key expires 0
	local left
	left=$("${KIND}_bindings")
	result reg_left "$left"
	[[ $left == 0 ]] || die "$left bindings left after un-registering every user"
}

phase_saturation() {
	local best=0 bestl=0 l ok el before after rate fails retr
	for l in $SAT_LIMITS; do
		log "$TARGET: store saturation, $l MESSAGEs in flight, ${SAT_SECS}s"
		before=$("${KIND}_rows")
		sipp_run "sat_$l" "$SAT_SECS" -sf "$(msg_scenario)" -inf "$OUT/pairs.csv" \
			-t u1 -p "$SIPP_PORT" -r 100000 -l "$l" -m 100000000 \
			-key domain "$DOMAIN" -key body "$BODY"
		sleep 1 # let in-flight INSERTs finish before counting
		after=$("${KIND}_rows")
		ok=$(sipp_stat "sat_$l" 'SuccessfulCall(C)')
		fails=$(sipp_stat "sat_$l" 'FailedCall(C)')
		retr=$(sipp_stat "sat_$l" 'Retransmissions(C)')
		el=$(sipp_stat "sat_$l" elapsed)
		rate=$(awk -v n="$ok" -v t="$el" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
		result "sat_${l}_ok" "$ok"
		result "sat_${l}_failed" "$fails"
		result "sat_${l}_retrans" "$retr"
		result "sat_${l}_rows" "$((after - before))"
		result "sat_${l}_rate" "$rate"
		log "$TARGET:   $ok stored in ${el}s = $rate/s; rows +$((after - before)); failed $fails; retransmissions $retr"
		if ((after - before < ok)); then
			result durable_check "FAIL(saturation L=$l: $((after - before)) rows < $ok 2xx)"
		fi
		if ((rate > best)); then best=$rate bestl=$l; fi
	done
	result sat_rate "$best"
	result sat_limit "$bestl"
}

phase_fixed() {
	local n=$((FIXED_RATE * FIXED_SECS))
	log "$TARGET: fixed rate $FIXED_RATE/s for ${FIXED_SECS}s ($n MESSAGEs), CPU accounting"
	local before after
	before=$("${KIND}_rows")
	cpu_snapshot "$TDIR/cpu.fixed.before"
	sipp_run fixed "$((FIXED_SECS * 3))" -sf "$(msg_scenario)" -inf "$OUT/pairs.csv" \
		-t u1 -p "$SIPP_PORT" -r "$FIXED_RATE" -l "$FIXED_RATE" -m "$n" \
		-key domain "$DOMAIN" -key body "$BODY"
	sleep 0.5
	cpu_snapshot "$TDIR/cpu.fixed.after"
	after=$("${KIND}_rows")
	local ok el
	ok=$(sipp_stat fixed 'SuccessfulCall(C)')
	el=$(sipp_stat fixed elapsed)
	result fixed_ok "$ok"
	result fixed_failed "$(sipp_stat fixed 'FailedCall(C)')"
	result fixed_rows "$((after - before))"
	if ((after - before < ok)); then
		result durable_check "FAIL(fixed: $((after - before)) rows < $ok 2xx)"
	fi
	result fixed_elapsed "$el"
	result fixed_achieved "$(awk -v n="$ok" -v t="$el" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')"
	cpu_results fixed "$ok"
	log "$TARGET:   $ok stored in ${el}s; $(getv "$TARGET" fixed_cpu_ticks)"
}

phase_drain() {
	local t=$1 user=$2 port=$3
	log "$TARGET: drain, $DRAIN_MSGS MESSAGEs queued for $user, device over $t"
	sipp_run "queue_$t" 60 -sf "$(msg_scenario)" -inf "$OUT/drain_$user.csv" \
		-t u1 -p "$SIPP_PORT" -r 100000 -l 50 -m "$DRAIN_MSGS" \
		-key domain "$DOMAIN" -key body "$BODY"
	sleep 0.5
	local queued
	queued=$("${KIND}_rows" "$user")
	result "drain_${t}_queued" "$queued"
	sipp_run "drain_$t" "$((DRAIN_HOLD_MS / 1000 + 20))" -sf "$SIPP_DIR/register_recv.xml" \
		-oocsf "$SIPP_DIR/ooc_message.xml" -t "$t" -p "$port" -m 1 -d "$DRAIN_HOLD_MS" -buff_size 4194304 \
		-key user "$user" -key domain "$DOMAIN" -key expires 600 -au "$user" -ap "$PASSWORD" \
		-trace_logs -log_file "$TDIR/drain_$t.log"
	# lines: "register|msg DATE<TAB>TIME<TAB>EPOCH.USEC[ Call-ID: ID From: …]"
	local f="$TDIR/drain_$t.log" reg n u nth last
	touch "$f"
	reg=$(awk -F'\t' '/^register / { split($3, a, " "); print a[1]; exit }' "$f")
	awk -F'\t' '/^msg / { split($3, a, " "); print a[1] }' "$f" | sort -g >"$TDIR/drain_$t.times"
	n=$(wc -l <"$TDIR/drain_$t.times")
	u=$(awk -F'\t' '/^msg / { split($3, a, " "); print a[3] }' "$f" | sort -u | wc -l)
	nth=n/a last=n/a
	if [[ -n $reg && $n -ge $DRAIN_MSGS ]]; then
		nth=$(awk -v r="$reg" -v w="$DRAIN_MSGS" 'NR == w { printf "%.3f", $1 - r }' "$TDIR/drain_$t.times")
	fi
	if [[ -n $reg && $n -gt 0 ]]; then
		last=$(tail -1 "$TDIR/drain_$t.times" | awk -v r="$reg" '{ printf "%.3f", $1 - r }')
	fi
	local s="received=$n unique_call_ids=$u nth_s=$nth last_s=$last"
	"${KIND}_settle" "$user"
	log "$TARGET:   queued $queued; $s"
	result "drain_$t" "$s"
}

# ---- one target (run as its own process: bash's set -e does not apply
# inside a function called from an `if` or `||` list) --------------------------
run_target() {
	TARGET=$1
	case $TARGET in
	kamailio-pg) KIND=kam ENGINE=pg ;;
	kamailio-sqlite) KIND=kam ENGINE=sqlite ;;
	cairn-pg) KIND=cairn ENGINE=pg ;;
	cairn-sqlite) KIND=cairn ENGINE=sqlite ;;
	*) die "unknown target $TARGET (one of: $ALL_TARGETS)" ;;
	esac
	TDIR="$OUT/$TARGET"
	rm -rf "$TDIR"
	mkdir -p "$TDIR"
	: >"$TDIR/result.env"
	port_free || die "127.0.0.1:$SIP_PORT is in use"
	log "$TARGET: setting up (users: $USERS + 2)"
	"${KIND}_setup"
	"${KIND}_start"
	result server "$(cat "$TDIR/server.cmd")"
	result loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
	[[ " $PHASES " == *" register "* ]] && phase_register
	[[ " $PHASES " == *" saturation "* ]] && phase_saturation
	if [[ " $PHASES " == *" fixed "* ]]; then
		if [[ " $PHASES " == *" register "* || " $PHASES " == *" saturation "* ]]; then
			log "$TARGET: settling for ${SETTLE_SECS}s"
			run_wait sleep "$SETTLE_SECS"
		fi
		phase_fixed
	fi
	local i=0 t
	if [[ " $PHASES " == *" drain "* ]]; then
		for t in $DRAIN_TRANSPORTS; do
			i=$((i + 1))
			phase_drain "$t" "d000$i" "$((SIPP_PORT + 2 + i))"
		done
	fi
	grep -q '^durable_check=' "$TDIR/result.env" || result durable_check ok
	result done 1
	log "$TARGET: done"
}

# ---- the table -------------------------------------------------------------------
getv() { sed -n "s/^$2=//p" "$OUT/$1/result.env" 2>/dev/null | tail -1; }

print_table() {
	local t
	echo
	echo "## SIP offline store: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "- machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
	local sv kv pv
	sv=$({ sipp -v 2>/dev/null || true; } | grep -o 'SIPp v[^ ]*' | sed -n 1p) || true # sipp -v exits 99
	kv=$({ kamailio -v 2>/dev/null || true; } | sed -n 's/^version: kamailio \([^ ]*\).*/\1/p') || true
	pv=$(psqlv -c 'SHOW server_version' 2>/dev/null) || true
	echo "- $sv; kamailio $kv; PostgreSQL $pv; cairn $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "- senders authenticated: $([[ $MSG_AUTH == 1 ]] && echo "yes (digest on every MESSAGE)" || echo "no (127.0.0.1 trusted on both)")"
	echo "- saturation: closed loop, L in {$SAT_LIMITS} MESSAGEs in flight, ${SAT_SECS}s each, best L shown; fixed rate: $FIXED_RATE/s for ${FIXED_SECS}s, ${SETTLE_SECS}s after the phases before it; REGISTER: $REG_LIMIT in flight, ${REG_SECS}s; drain: $DRAIN_MSGS messages"
	echo "- raw logs: $OUT"
	echo
	echo "| target | stored msgs/s at saturation (L) | rows >= 2xx | fixed rate: stored/s | CPU ms/msg server | CPU ms/msg PostgreSQL | CPU ms/msg total | REGISTER+digest/s | CPU ms/REGISTER total | drain $DRAIN_MSGS (UDP) s | drain $DRAIN_MSGS (TCP) s |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	for t in $TARGETS; do
		if [[ $(getv "$t" done) != 1 ]]; then
			echo "| $t | FAILED (see $OUT/$t/) | | | | | | | | | |"
			continue
		fi
		local du dt
		du=$(getv "$t" drain_u1 | sed -n 's/.*nth_s=\([^ ]*\).*/\1/p')
		dt=$(getv "$t" drain_t1 | sed -n 's/.*nth_s=\([^ ]*\).*/\1/p')
		local pg fx
		pg=$(getv "$t" fixed_cpu_pg_ms)
		[[ $t == *sqlite ]] && pg="–"
		fx=$(getv "$t" fixed_achieved)
		# the CPU figures only compare below saturation
		[[ -n $fx ]] && ((fx * 100 < FIXED_RATE * 97)) && fx="$fx (saturated!)"
		echo "| $t | $(getv "$t" sat_rate) ($(getv "$t" sat_limit)) | $(getv "$t" durable_check) | ${fx:-–} of $FIXED_RATE | $(getv "$t" fixed_cpu_server_ms) | $pg | $(getv "$t" fixed_cpu_total_ms) | $(getv "$t" reg_rate) | $(getv "$t" reg_cpu_total_ms) | ${du:-–} | ${dt:-–} |"
	done
	echo
	echo "Per target (all values): $OUT/<target>/result.env"
}

# ---- main --------------------------------------------------------------------------
if [[ ${1:-} == __target ]]; then
	# a worker: OUT is set by the parent
	trap 'exit 143' TERM
	run_target "$2"
	exit 0
fi

case ${1:-} in -h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'
	exit 0
	;;
esac

TARGETS="${*:-$ALL_TARGETS}"
for t in $TARGETS; do
	case " $ALL_TARGETS " in *" $t "*) ;; *) die "unknown target $t (one of: $ALL_TARGETS)" ;; esac
done
for c in sipp ss awk sqlite3 setsid; do command -v "$c" >/dev/null || die "$c not found"; done
case $TARGETS in *kamailio*) command -v kamailio >/dev/null || die "kamailio not found" ;; esac
case $TARGETS in *-pg*) command -v psql >/dev/null || die "psql not found"; psqlv -c 'SELECT 1' >/dev/null || die "PostgreSQL not reachable at $PGURL" ;; esac
[[ -f $SIPP_DIR/message_noauth.xml ]] || die "no SIPp scenarios in $SIPP_DIR"
[[ $KAM_SCHEMA != public && $CAIRN_SCHEMA != public ]] || die "the benchmark drops its schemas: not public"

if [[ -z $OUT ]]; then OUT=$(mktemp -d "${TMPDIR:-/tmp}/sip-offline.XXXXXX"); fi
mkdir -p "$OUT"
export OUT
log "raw logs in $OUT"
make_csvs

# the watchdog: the whole run is bounded. It takes its sleep with it when
# it is stopped (an orphaned sleep would hold our stdout open).
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$TOTAL_TIMEOUT" &
	sp=$!
	wait "$sp"
	# only if $$ is still this script (not a recycled pid)
	grep -q sip-offline "/proc/$$/cmdline" 2>/dev/null && kill -TERM $$
) </dev/null >/dev/null 2>&1 &
PIDS_STARTED+=("$!")

for t in $TARGETS; do
	# each target is a process of its own, its log copied to stderr
	if ! run_wait bash "$SELF" __target "$t" > >(tee "$OUT/$t.log" >&2) 2>&1; then
		log "$t failed (see $OUT/$t.log)"
	fi
done

print_table | tee "$OUT/table.md"
