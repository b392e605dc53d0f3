'use strict';
// interop.js: JsSIP (npm jssip 3.13.8, with ws 8.18.0 as Node's WebSocket)
// against a cairn node over ws:// or wss://. sip/interop_test.go runs it with
// NODE_PATH pointing at a scratch node_modules and one JSON argument:
//
//   {"url": "ws://127.0.0.1:PORT", "domain": "example.com",
//    "alice": {"user": "alice", "password": "…"},
//    "bob":   {"user": "bob",   "password": "…"},
//    "body": "…", "contentType": "text/plain;charset=UTF-8",
//    "timeoutMs": 15000}
//
// Steps, in order:
//   alice_register   alice registers (digest, 401 answered by JsSIP)
//   bad_password     bob with a wrong password fails to register
//   offline_send     alice sends body to bob, who has no device: 2xx
//   offline_receive  bob registers and gets that MESSAGE (same body, same
//                    Content-Type, from alice)
//   live_to_bob      alice sends again while bob is registered: bob gets it
//   live_to_alice    bob sends to alice: alice gets it
//   exactly_once     after a short wait bob has 2 MESSAGEs and alice 1
//   unregister       both un-register
// It prints one JSON line {"ok": …, "steps": […], "bob": […], "alice": […]}
// and exits 0 when every step passed, 1 otherwise (2 on bad usage).

const JsSIP = require('jssip');
const WS = require('ws');

const cfg = JSON.parse(process.argv[2] || 'null');
if (!cfg || !cfg.url || !cfg.domain || !cfg.alice || !cfg.bob) {
  process.stderr.write('usage: node interop.js JSON (see the header comment)\n');
  process.exit(2);
}
const timeoutMs = cfg.timeoutMs || 15000;
const contentType = cfg.contentType || 'text/plain';

// Node 20 has no global WebSocket: JsSIP's WebSocketInterface takes this one.
// The node's certificate is self-signed, so wss:// does not verify it.
global.WebSocket = class extends WS {
  constructor(url, protocols) {
    super(url, protocols, { rejectUnauthorized: false });
  }
};
JsSIP.debug.disable('JsSIP:*');

const results = { ok: false, steps: [], bob: [], alice: [] };
const uas = [];

function finish(ok) {
  results.ok = ok && results.steps.every((s) => s.ok);
  for (const ua of uas) {
    try { ua.stop(); } catch (e) { /* already stopped */ }
  }
  process.stdout.write(JSON.stringify(results) + '\n', () => process.exit(results.ok ? 0 : 1));
}

// A hard deadline: whatever hangs, the script answers.
setTimeout(() => {
  results.steps.push({ name: 'deadline', ok: false, detail: `not done within ${timeoutMs} ms` });
  finish(false);
}, timeoutMs).unref();

function step(name, ok, detail) {
  results.steps.push({ name, ok, detail: detail || '' });
  if (!ok) {
    throw new Error(`${name}: ${detail}`);
  }
}

// within resolves with what the event handler set up by start gives, or
// rejects after ms.
function within(ms, what, start) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    start((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
  });
}

function newUA(account, received) {
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(cfg.url)],
    uri: `sip:${account.user}@${cfg.domain}`,
    password: account.password,
    register: false,
    register_expires: 300,
    session_timers: false,
    user_agent: 'cairn-jssip-it',
    connection_recovery_min_interval: 2,
    connection_recovery_max_interval: 30,
  });
  ua.on('newMessage', (e) => {
    if (e.originator !== 'remote') {
      return;
    }
    const r = e.request;
    received.push({
      body: r.body,
      contentType: r.getHeader('Content-Type'),
      from: r.from.uri.toString(),
      to: r.to.uri.toString(),
      callId: r.call_id,
      date: r.getHeader('Date') || '',
    });
    if (received.waiter) {
      received.waiter();
    }
  });
  uas.push(ua);
  return ua;
}

// register starts ua and resolves with 'registered' or rejects with the
// failure cause.
function register(ua, what) {
  return within(timeoutMs, what, (ok, fail) => {
    ua.once('registered', () => ok());
    ua.once('registrationFailed', (e) => fail(new Error(`${what}: registration failed: ${e.cause}` +
      (e.response ? ` (${e.response.status_code})` : ''))));
    if (ua.isConnected()) {
      ua.register();
    } else {
      ua.once('connected', () => ua.register());
      ua.start();
    }
  });
}

function send(ua, to, body, what) {
  return within(timeoutMs, what, (ok, fail) => {
    ua.sendMessage(`sip:${to}@${cfg.domain}`, body, {
      contentType,
      eventHandlers: {
        succeeded: (e) => ok(e.response.status_code),
        failed: (e) => fail(new Error(`${what}: ${e.cause}` + (e.response ? ` (${e.response.status_code})` : ''))),
      },
    });
  });
}

function waitReceived(list, n, what) {
  return within(timeoutMs, what, (ok) => {
    const check = () => {
      if (list.length >= n) {
        list.waiter = null;
        ok();
      }
    };
    list.waiter = check;
    check();
  });
}

function sameMessage(got, body, from) {
  const problems = [];
  if (got.body !== body) {
    problems.push(`body ${JSON.stringify(got.body)}, want ${JSON.stringify(body)}`);
  }
  if (got.contentType !== contentType) {
    problems.push(`Content-Type ${JSON.stringify(got.contentType)}, want ${JSON.stringify(contentType)}`);
  }
  if (got.from !== `sip:${from}@${cfg.domain}`) {
    problems.push(`From ${got.from}, want sip:${from}@${cfg.domain}`);
  }
  return problems.join('; ');
}

async function main() {
  const alice = newUA(cfg.alice, results.alice);
  await register(alice, 'alice_register');
  step('alice_register', true);

  const impostor = newUA({ user: cfg.bob.user, password: `${cfg.bob.password}-wrong` }, []);
  let refused = null;
  try {
    await register(impostor, 'bad_password');
  } catch (e) {
    refused = e;
  }
  impostor.stop();
  step('bad_password', refused !== null && /registration failed/.test(refused.message),
    refused ? refused.message : 'registered with a wrong password');

  const offline = cfg.body;
  const code = await send(alice, cfg.bob.user, offline, 'offline_send');
  step('offline_send', code >= 200 && code < 300, `status ${code}`);

  const bob = newUA(cfg.bob, results.bob);
  await register(bob, 'bob_register');
  await waitReceived(results.bob, 1, 'offline_receive');
  const p1 = sameMessage(results.bob[0], offline, cfg.alice.user);
  step('offline_receive', p1 === '', p1);

  const live = `${cfg.body} (live)`;
  const code2 = await send(alice, cfg.bob.user, live, 'live_to_bob');
  await waitReceived(results.bob, 2, 'live_to_bob');
  const p2 = sameMessage(results.bob[1], live, cfg.alice.user);
  step('live_to_bob', code2 === 200 && p2 === '', `status ${code2} ${p2}`);

  const back = `${cfg.body} (reply)`;
  const code3 = await send(bob, cfg.alice.user, back, 'live_to_alice');
  await waitReceived(results.alice, 1, 'live_to_alice');
  const p3 = sameMessage(results.alice[0], back, cfg.bob.user);
  step('live_to_alice', code3 === 200 && p3 === '', `status ${code3} ${p3}`);

  await new Promise((r) => setTimeout(r, 300));
  step('exactly_once', results.bob.length === 2 && results.alice.length === 1,
    `bob got ${results.bob.length} MESSAGEs (want 2), alice ${results.alice.length} (want 1)`);

  await Promise.all([alice, bob].map((ua) => within(timeoutMs, 'unregister', (ok) => {
    ua.once('unregistered', () => ok());
    ua.unregister();
  })));
  step('unregister', true);
}

main().then(() => finish(true), (e) => {
  if (results.steps.length === 0 || results.steps[results.steps.length - 1].ok) {
    results.steps.push({ name: 'error', ok: false, detail: e.message });
  }
  finish(false);
});
