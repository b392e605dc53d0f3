// Package auth keeps account secrets and checks them. SIP and web passwords are
// never stored: an account holds the digest HA1 values of each (MD5 and
// SHA-256, RFC 7616 and RFC 8760, for the username alone and for user@domain),
// sealed with AES-256-GCM under a key kept in a file of mode 0600, plus a slow
// argon2id hash of the web password. Digest nonces are stateless MACs with an
// expiry, and each nonce count is accepted once. The HTTP authenticator here
// serves the journal API; the SIP registrar reuses the same credentials.
package auth
