// Package delivery is cairn's delivery core: it takes one message for one
// user and hands it to every reachable device of that user, and what no
// device took to the spool (package offline), before the sender is answered.
// Front-ends plug in as a Locator, which finds a user's devices, and a
// Transport, which sends to one device; the core knows no wire format.
package delivery

import (
	"context"
	"time"
)

// Message is one message to one user. Its header values are opaque to the
// core: the front-end that accepted it wrote them and the one that sends it
// reads them. ID is the spool's id once the message is stored, else 0.
type Message struct {
	ID          int64
	AccountID   int64  // the recipient's account
	Sender      string // the sender's address, user@domain, lower case
	From        string // From header value, without tag
	To          string // To header value, without tag
	Date        string // original Date, RFC 1123 GMT
	ContentType string
	Body        []byte
	// Key identifies resends of the same message from the same sender.
	Key string
	// Expires is the lifetime the sender asked for; 0 asks for none.
	Expires time.Duration
	// Replicated marks a copy of a message the account sent from one
	// device, for its other devices (From is the account, To the peer).
	Replicated bool
}

// Device is one reachable endpoint of a user. Instance is its stable key;
// Route is the front-end's own address for it, opaque to the core.
type Device struct {
	Instance string
	Route    any
}

// State is the kind of an Outcome.
type State int

// The kinds of outcome of one send.
const (
	// Delivered: the device took the message.
	Delivered State = iota + 1
	// Failed: the device did not answer or failed for now; try again later.
	Failed
	// Rejected: the device refused the message for good.
	Rejected
)

// Outcome is what one device did with a message. Code and Reason are the
// transport's status (a SIP status code and reason phrase), kept so that the
// front-end can give the sender the best answer.
type Outcome struct {
	State  State
	Code   int
	Reason string
}

// Locator finds the devices a user can be reached on now.
type Locator interface {
	Devices(ctx context.Context, accountID int64) ([]Device, error)
}

// Transport sends messages to devices. Send writes m to d before it returns,
// so that messages sent one after another leave in that order, and returns a
// function that waits for the device's answer (or ctx, or the transport's
// timeout). The wait function must be called exactly once.
type Transport interface {
	Send(ctx context.Context, d Device, m *Message) (wait func() Outcome)
}

// Spool keeps a message for the devices that did not take it: delivered
// lists the instances that did, failed those registered now that did not
// (to be tried again). It returns only once the message is durable.
type Spool interface {
	Store(ctx context.Context, m *Message, delivered, failed []string) error
}

// Report is what Deliver did: how many devices took the message, whether it
// was stored for the others, and when every device refused it, the best of
// their refusals.
type Report struct {
	Delivered int
	Stored    bool
	Refusal   Outcome
}

// Core routes messages: live devices first, the spool for the rest.
type Core struct {
	loc   Locator
	tr    Transport
	spool Spool
}

// New returns a Core.
func New(loc Locator, tr Transport, spool Spool) *Core {
	return &Core{loc: loc, tr: tr, spool: spool}
}

// Deliver sends m to every device of its recipient at once and waits for
// every answer. When every device took it, nothing is stored. When every
// device refused it for good, the best refusal is reported and nothing is
// stored. Otherwise (no device, or one that failed or did not answer) m is
// stored for every device that did not take it, including devices that
// register later; Deliver returns once it is durable. A spool error is
// returned as it is.
func (c *Core) Deliver(ctx context.Context, m *Message) (Report, error) {
	devices, err := c.loc.Devices(ctx, m.AccountID)
	if err != nil {
		return Report{}, err
	}
	waits := make([]func() Outcome, len(devices))
	for i, d := range devices {
		waits[i] = c.tr.Send(ctx, d, m)
	}
	outcomes := make([]Outcome, len(devices))
	for i, wait := range waits {
		outcomes[i] = wait()
	}

	var rep Report
	var delivered, failed []string
	for i, o := range outcomes {
		switch o.State {
		case Delivered:
			rep.Delivered++
			delivered = append(delivered, devices[i].Instance)
		case Rejected:
			if rep.Refusal.State == 0 || better(o, rep.Refusal) {
				rep.Refusal = o
			}
		default:
			failed = append(failed, devices[i].Instance)
		}
	}
	if len(devices) > 0 && len(failed) == 0 {
		if rep.Delivered > 0 {
			rep.Refusal = Outcome{}
		}
		return rep, nil
	}
	rep.Refusal = Outcome{}
	if err := c.spool.Store(ctx, m, delivered, failed); err != nil {
		return rep, err
	}
	rep.Stored = true
	return rep, nil
}

// better ranks refusals as RFC 3261 §16.7 ranks final responses: a 6xx
// first, then the lowest code.
func better(a, b Outcome) bool {
	if (a.Code >= 600) != (b.Code >= 600) {
		return a.Code >= 600
	}
	return a.Code < b.Code
}
