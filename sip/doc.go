// Package sip is cairn's SIP front-end, on github.com/emiago/sipgo: UDP,
// TCP, TLS and WebSocket listeners (RFC 7118), a registrar with Digest
// authentication (RFC 3261, RFC 8760) whose bindings live in the store,
// MESSAGE routing (RFC 3428) through the delivery core, and traces of every
// SIP message it receives or sends. It implements delivery.Locator and
// delivery.Transport, so that stored messages reach devices over the
// connection they registered on.
//
// Files: parse_*.go are pure functions over parsed messages and bodies;
// handler_*.go answer requests; transport_*.go send to devices; trace*.go
// keep the signaling traces.
package sip
