// Package replicationtest helps tests of the Blink chat-replication journal
// API play Blink's part: it makes and reads Blink's encrypted entry blobs
// (EncryptionWrappers, Python 2 era), builds the journal entry JSON Blink
// encrypts, and talks to a server the way NSURLConnection does: an
// unauthenticated request first, then one answer to the Digest challenge,
// with Blink's raw query strings and POST bodies without a Content-Type.
package replicationtest
