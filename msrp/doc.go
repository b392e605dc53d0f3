// Package msrp is cairn's MSRP relay (RFC 4975, RFC 4976): a streaming frame
// reader and writer (reader.go, frame.go, uri.go: pure, fuzzed), digest AUTH
// against cairn's accounts, and a relay that binds each session's two legs to
// their connections and streams SEND chunks between them with bounded
// buffers. It keeps no content: logs, metrics and session records hold
// metadata only.
package msrp
