package store

import (
	"context"
	"time"
)

// Registration is one contact binding of an account (RFC 3261 §10). Instance
// is the device key: the +sip.instance of RFC 5626 when the device sent one,
// else the Contact URI. Source is the host:port the REGISTER came from (after
// rport/received), Transport is udp, tcp, tls, ws or wss: requests to the
// contact go there, over the connection it registered on when the transport
// is a stream. Node names the cairn node that holds that connection.
type Registration struct {
	AccountID int64
	Instance  string
	Contact   string
	Transport string
	Source    string
	Node      string
	CallID    string
	CSeq      uint32
	UserAgent string
	Expires   time.Time // UTC, to the microsecond
	UpdatedAt time.Time // set by the store
}

// Registrations is the location service the SIP registrar needs.
type Registrations interface {
	// RegistrationPut stores r, replacing the binding with the same account
	// and instance. Instance and Contact must be non-empty.
	RegistrationPut(ctx context.Context, r Registration) error
	// RegistrationDelete removes one binding; it is not an error when there
	// is none.
	RegistrationDelete(ctx context.Context, accountID int64, instance string) error
	// RegistrationDeleteAll removes every binding of an account (Contact: *).
	RegistrationDeleteAll(ctx context.Context, accountID int64) error
	// RegistrationList returns the bindings of an account that expire after
	// now, ordered by instance.
	RegistrationList(ctx context.Context, accountID int64, now time.Time) ([]Registration, error)
	// RegistrationPurge removes the bindings that expired at or before
	// before and returns how many.
	RegistrationPurge(ctx context.Context, before time.Time) (int64, error)
}

// OfflineMessage is one SIP MESSAGE kept for later delivery to the devices
// of account AccountID. From and To are the header values as received (From
// without its tag), Date the original Date header or, when there was none,
// the time it arrived (RFC 1123, GMT). ContentType and Body are kept byte for
// byte. Key deduplicates resends: a second MESSAGE with the same account,
// sender and key is the same message. Size is len(Body), what quotas count.
type OfflineMessage struct {
	ID          int64
	AccountID   int64
	Sender      string // the sender's address, user@domain, lower case
	From        string
	To          string
	Date        string
	ContentType string
	Body        []byte
	Key         string
	CreatedAt   time.Time // set by the store
	ExpiresAt   time.Time
}

// OfflineEnqueueParams stores one message. Delivered lists the instances that
// took it already (they are never sent it again). MaxCount and MaxBytes bound
// the recipient's backlog: the messages unexpired at Now that no device has
// taken (DeliveryDone), with this message included; zero means no bound. A message kept for devices that have not
// registered yet, once some device took it, counts no more. The check and
// the insert are one atomic step.
type OfflineEnqueueParams struct {
	Message   OfflineMessage
	Delivered []string
	MaxCount  int
	MaxBytes  int64
	Now       time.Time
}

// OfflineEnqueueResult tells what an enqueue did. Duplicate is true when a
// message with the same account, sender and key was stored already (and has
// not expired): ID is then that message's, and nothing was written.
type OfflineEnqueueResult struct {
	ID        int64
	Duplicate bool
}

// DeliveryState is how one device stands with one stored message.
type DeliveryState int

// Delivery states. A message with no state for a device is pending for it.
const (
	// DeliveryRetry: the device failed temporarily; retry at NextAt.
	DeliveryRetry DeliveryState = 1
	// DeliveryDone: the device answered 2xx; never sent again.
	DeliveryDone DeliveryState = 2
	// DeliveryRejected: the device refused it for good; never sent again.
	DeliveryRejected DeliveryState = 3
)

// OfflinePending is one message owed to a device, with its retry state.
type OfflinePending struct {
	Message  OfflineMessage
	Attempts int
	NextAt   time.Time // zero when never tried
}

// OfflinePendingQuery selects what one device of an account is owed: the
// messages unexpired at Now that are neither done nor rejected for Instance,
// after AfterID, in id order, at most Limit (which must be positive).
type OfflinePendingQuery struct {
	AccountID int64
	Instance  string
	Now       time.Time
	AfterID   int64
	Limit     int
}

// OfflineMarkParams records the outcome of delivery attempts of the messages
// MessageIDs to Instance, all with the same State, in one commit (a drain
// records a window of deliveries at once). For DeliveryRetry the store counts
// one attempt per message and keeps NextAt.
type OfflineMarkParams struct {
	AccountID  int64
	MessageIDs []int64
	Instance   string
	State      DeliveryState
	NextAt     time.Time
}

// MaxOwedAccounts is the most account ids one OfflineOwed may name.
const MaxOwedAccounts = 1024

// Offline is the store-and-forward queue the offline package needs.
type Offline interface {
	// OfflineEnqueue stores a message once it is committed, or returns
	// ErrQuota and stores nothing. Concurrent enqueues share commits.
	OfflineEnqueue(ctx context.Context, p OfflineEnqueueParams) (OfflineEnqueueResult, error)
	// OfflineOwed returns those of accountIDs that hold a message unexpired
	// at now, whatever its delivery states, in rising order and each once;
	// for no ids it returns nothing without a query. It refuses more than
	// MaxOwedAccounts ids. It is a cheap over-approximation read before
	// draining: a device of an account it returns may still be owed
	// nothing; the devices of the others are owed nothing at now.
	OfflineOwed(ctx context.Context, accountIDs []int64, now time.Time) ([]int64, error)
	// OfflinePending returns what a device is owed.
	OfflinePending(ctx context.Context, q OfflinePendingQuery) ([]OfflinePending, error)
	// OfflineMark records delivery outcomes. Ids of messages that no longer
	// exist or belong to another account are skipped; when none of the ids is
	// marked it returns ErrNotFound.
	OfflineMark(ctx context.Context, p OfflineMarkParams) error
	// OfflinePurge removes the messages that expired at or before before,
	// with their delivery states, and returns how many messages.
	OfflinePurge(ctx context.Context, before time.Time) (int64, error)
}

// Trace is one SIP message cairn received (Direction "in") or sent ("out").
// Method is the request method, or for a response the method of its CSeq;
// Status is 0 for a request. FromAddr and ToAddr are the From and To
// addresses as user@domain in lower case, "" when absent: they are the
// accounts a trace belongs to. Message is the message as on the wire.
type Trace struct {
	ID        int64
	Time      time.Time // UTC, to the microsecond
	Direction string
	Transport string
	Local     string
	Remote    string
	CallID    string
	Method    string
	Status    int
	FromAddr  string
	ToAddr    string
	Message   []byte
}

// TraceQuery selects traces newer than Since (retention), with an ID above
// AfterID, ordered by id, at most Limit (which must be positive). Addr, when
// set, keeps only traces whose FromAddr or ToAddr is Addr: a user's own.
// CallID, when set, keeps only that call or message exchange.
type TraceQuery struct {
	Since   time.Time
	Addr    string
	CallID  string
	AfterID int64
	Limit   int
}

// Traces is the storage of SIP signaling traces.
type Traces interface {
	// TraceAppend stores the traces in one commit and sets nothing on them:
	// traces are written behind the traffic, in batches.
	TraceAppend(ctx context.Context, ts []Trace) error
	// TraceList returns the traces that match q.
	TraceList(ctx context.Context, q TraceQuery) ([]Trace, error)
	// TracePurge removes traces older than before and returns how many.
	TracePurge(ctx context.Context, before time.Time) (int64, error)
}
