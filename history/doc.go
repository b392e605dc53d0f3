// Package history is cairn's message history, compatible with SylkServer's
// as today's Blink (Cocoa and Qt) reads it: a per-account journal of the
// messages an account sent and received and of control events (IMDNs,
// removals, conversations read or removed), API tokens that devices ask
// for over SIP, the history API they read it with, and a live sync over
// WebSocket for clients that want rows as they are committed.
//
// Files: service.go (the Service, Append, metrics), token.go (tokens and
// their check), api.go (the history API), sync.go (the live sync and the
// hub that fans rows out to it), encode.go (the JSON of a row, pure).
//
// # Tokens
//
// A device sends itself a MESSAGE of type application/sylk-api-token; the
// SIP front-end calls IssueToken and sends back its body,
// {"token":"…","url":"https://…/webrtcgateway/messages/history/alice@example.com"}.
// A token is 256 random bits, base64url; only its SHA-256 digest is
// stored. Each device keeps its own token (SylkServer keeps one per
// account, so that devices invalidate each other's); an account keeps at
// most Config.MaxTokens, the oldest going first.
//
// # History API
//
//	GET /webrtcgateway/messages/history/alice@example.com/<last_id>
//	Authorization: Apikey <token>
//
//	200 application/json
//	{"account":"alice@example.com","messages":[item…],"more":false,"last_id":42}
//
// An item is
//
//	{"id":42,"message_id":"5b0c…","contact":"bob@example.com",
//	 "timestamp":"2025-03-14T15:00:00.123456+00:00","disposition":["positive-delivery","display"],
//	 "content_type":"text/plain","content":"hi","direction":"incoming","state":"received"}
//
// Every field is always there and never null: disposition is [] when
// empty, direction and state may be "". Timestamps are UTC (Blink Qt
// forces history times to UTC whatever their offset). Content that is not
// UTF-8 is given byte by byte as Latin-1, as SylkServer does. last_id in the
// path is optional: Blink sends the message_id of the last row it
// processed. Rows come in id order after it, at most Config.PageLimit; more
// tells whether rows remain, last_id in the answer is the id of the last
// row. Rows past retention are never listed, and a cursor that matches
// nothing starts from the oldest row kept (SylkServer's Cassandra backend
// answers only the last three days then). A missing, wrong, expired or
// other account's token gets 401 Unauthorized, upon which Blink asks for a
// new token.
//
// # Live sync
//
// A client opens a WebSocket at
//
//	/webrtcgateway/messages/sync/alice@example.com?after=<id>
//
// authenticated with Authorization: Apikey <token> or, for browsers, the
// subprotocol "apikey.<token>", which the server echoes; a token never goes
// in the URL. The server then sends every row after the id after (0 or
// absent: from the oldest kept), each as one text message holding one item
// as above, in id order: first the backlog from the store, then each row
// as it is committed, with no gap and no repeat. The client sends nothing;
// the server pings every 30 s and cuts a client that has not answered in
// 60 s. To resume, a client reconnects with after set to the id of the last
// row it got. The server closes with
//
//	4008 "too slow: reconnect with after=<id>"   the client fell Config.SubscriberQueue rows behind
//	1001 "server shutting down: reconnect with after=<id>"
//	1011 "store unavailable: reconnect with after=<id>"
//
// where <id> is the id of the last row it sent. More than 16 connections of
// one account, or 20,000 in all, are refused with 503.
//
// Rows are published to the subscribers of the node that appended them;
// a connection also looks in the store every 30 s, so that rows appended
// through another node sharing the database arrive within 30 s.
//
// A connection subscribes before it reads the backlog and skips rows it
// has sent. Ids of an account are consecutive and commit in order, so a
// live row whose id is not the next one means that appends were published
// out of commit order: the connection reads the rows in between from the
// store.
package history
