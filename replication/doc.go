// Package replication serves the Blink chat-replication journal: the
// put_journal_entries, get_journal_entries, delete_journal_entries and
// get_history actions of the SIP2SIP settings page (cdrtool), with the
// integer timestamps of its Mongo-era backend that Blink was written against
// and the bugs of its later MySQL backend fixed. Entries are client-encrypted
// blobs: this package stores and returns them byte for byte and never looks
// inside. Every query is scoped to the authenticated account, and entries
// older than the retention period are neither returned nor kept.
package replication
