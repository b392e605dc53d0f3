package history

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-chat/cairn/store"
)

// Content types cairn acts on (sylk.md §2.4, §4.2): the API requests a
// device sends, and the rows the history holds for them.
const (
	TypeToken              = "application/sylk-api-token"
	TypeKeyLookup          = "application/sylk-api-pgp-key-lookup"
	TypeMessageRemove      = "application/sylk-api-message-remove"
	TypeConversationRead   = "application/sylk-api-conversation-read"
	TypeConversationRemove = "application/sylk-api-conversation-remove"
	TypePublicKey          = "text/pgp-public-key"
	TypeIMDN               = "message/imdn+xml"
	TypeComposing          = "application/im-iscomposing+xml"

	rowIMDN               = "message/imdn"
	rowMessageRemove      = "application/sylk-message-remove"
	rowConversationRead   = "application/sylk-conversation-read"
	rowConversationRemove = "application/sylk-conversation-remove"
)

// Errors of the control requests.
var (
	// ErrNotOwner: only the sender of a message may remove it.
	ErrNotOwner = errors.New("history: only the sender removes a message")
	// ErrBadRequest: the body of a control request is malformed.
	ErrBadRequest = errors.New("history: malformed control request")
)

// Message is a MESSAGE between two addresses as the history keeps it.
// Sender and Recipient are the local accounts at either end (nil for an
// address served elsewhere); From and To are the addresses, user@domain.
// MessageID is the CPIM imdn.Message-ID, or NewMessageID's.
type Message struct {
	Sender, Recipient *store.Account
	From, To          string
	MessageID         string
	ContentType       string // the content's own type, inside CPIM
	Content           []byte
	Timestamp         time.Time
	Disposition       []string
}

// Record stores a message before it is acknowledged: an outgoing row,
// pending, for a local sender, and an incoming row, received, with the
// receipts asked for, for a local recipient.
func (s *Service) Record(ctx context.Context, m Message) error {
	var rows []store.HistoryRow
	row := func(acct *store.Account, contact, dir, state string) store.HistoryRow {
		return store.HistoryRow{AccountID: acct.ID, MessageID: m.MessageID, Contact: contact, Direction: dir,
			ContentType: m.ContentType, Content: m.Content, Timestamp: m.Timestamp.UTC(),
			Disposition: nonNil(m.Disposition), State: state}
	}
	if m.Sender != nil {
		rows = append(rows, row(m.Sender, m.To, "outgoing", "pending"))
	}
	if m.Recipient != nil {
		rows = append(rows, row(m.Recipient, m.From, "incoming", "received"))
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := s.Append(ctx, rows...)
	return err
}

// notification is the content of a message/imdn row: SylkServer's
// disposition-notification event, with no true, false or null in it, so
// that Blink Cocoa can read it with Python's eval as well as JSON.
type notification struct {
	Sylkrtc          string `json:"sylkrtc"`
	Account          string `json:"account"`
	Event            string `json:"event"`
	MessageID        string `json:"message_id"`
	MessageTimestamp string `json:"message_timestamp"`
	State            string `json:"state"`
	Code             int    `json:"code"`
	Reason           string `json:"reason"`
}

func (s *Service) notificationRow(acct *store.Account, contact, dir, messageID, stamp, state string, code int, reason string) store.HistoryRow {
	content, _ := json.Marshal(notification{Sylkrtc: "account-event", Account: acct.Address(),
		Event: "disposition-notification", MessageID: messageID, MessageTimestamp: stamp,
		State: state, Code: code, Reason: reason})
	return store.HistoryRow{AccountID: acct.ID, MessageID: NewMessageID(), Contact: contact, Direction: dir,
		ContentType: rowIMDN, Content: content, Timestamp: s.now().UTC(), Disposition: []string{}, State: "received"}
}

// Outcome records what SIP answered to a local sender's message: accepted
// for a 2xx (taken by a device, or stored for later), failed otherwise.
// The answer has gone already, so the row is written behind it, with the
// outcomes of other messages (later.go); errors are logged there.
func (s *Service) Outcome(sender *store.Account, contact, messageID string, sent time.Time, code int, reason string) {
	state := "failed"
	if code >= 200 && code < 300 {
		state = "accepted"
	}
	s.appendLater(s.notificationRow(sender, contact, "incoming", messageID, sent.UTC().Format(timestampLayout), state, code, reason))
}

// Notify records an IMDN that from sent to to about a message to sent: a
// row for to, the message's sender, and one for from, so that its other
// devices learn what it reported.
func (s *Service) Notify(ctx context.Context, from, to *store.Account, fromAddr, toAddr string, n IMDN) error {
	var rows []store.HistoryRow
	if to != nil {
		rows = append(rows, s.notificationRow(to, fromAddr, "incoming", n.MessageID, n.DateTime, n.Status, 200, ""))
	}
	if from != nil {
		rows = append(rows, s.notificationRow(from, toAddr, "outgoing", n.MessageID, n.DateTime, n.Status, 200, ""))
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := s.Append(ctx, rows...)
	return err
}

// Control applies an API request that acct sent about its conversation
// with peer (peerAcct when local): remove a message acct sent (the body is
// its message id; both sides get a removal row), or mark the conversation
// read or removed (the body is {"contact": …}). It returns ErrBadRequest,
// ErrNotOwner or store.ErrNotFound for requests it refuses.
func (s *Service) Control(ctx context.Context, acct *store.Account, peerAcct *store.Account, peer, contentType string, body []byte) error {
	switch contentType {
	case TypeMessageRemove:
		return s.remove(ctx, acct, peerAcct, peer, strings.TrimSpace(string(body)))
	case TypeConversationRead, TypeConversationRemove:
		var req struct {
			Contact string `json:"contact"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Contact == "" || len(req.Contact) > 512 || !utf8.ValidString(req.Contact) {
			return ErrBadRequest
		}
		ct := rowConversationRead
		if contentType == TypeConversationRemove {
			ct = rowConversationRemove
		}
		contact := bareAddress(req.Contact)
		_, err := s.Append(ctx, store.HistoryRow{AccountID: acct.ID, MessageID: NewMessageID(), Contact: contact,
			ContentType: ct, Content: []byte(contact), Timestamp: s.now().UTC(), Disposition: []string{}})
		return err
	}
	return ErrBadRequest
}

// remove removes a message that acct sent to peer, for both sides. Unlike
// SylkServer, it checks that acct is the sender: its own history must hold
// the message as outgoing to peer.
func (s *Service) remove(ctx context.Context, acct, peerAcct *store.Account, peer, messageID string) error {
	if messageID == "" || len(messageID) > 256 || !utf8.ValidString(messageID) {
		return ErrBadRequest
	}
	rows, err := s.st.HistoryFind(ctx, acct.ID, messageID, s.Since())
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return store.ErrNotFound
	}
	owner := false
	for _, r := range rows {
		owner = owner || r.Direction == "outgoing" && r.Contact == peer
	}
	if !owner {
		return ErrNotOwner
	}
	removal := func(a *store.Account, contact, dir string) store.HistoryRow {
		content, _ := json.Marshal(struct {
			Contact   string `json:"contact"`
			MessageID string `json:"message_id"`
			Direction string `json:"direction"`
		}{contact, messageID, dir})
		return store.HistoryRow{AccountID: a.ID, MessageID: NewMessageID(), Contact: contact, Direction: dir,
			ContentType: rowMessageRemove, Content: content, Timestamp: s.now().UTC(), Disposition: []string{}}
	}
	out := []store.HistoryRow{removal(acct, peer, "outgoing")}
	if peerAcct != nil {
		out = append(out, removal(peerAcct, acct.Address(), "incoming"))
	}
	_, err = s.Append(ctx, out...)
	return err
}

// PublishKey makes key the PGP public key of acct, which sent it
// authenticated: nobody publishes a key for another account.
func (s *Service) PublishKey(ctx context.Context, acct *store.Account, key []byte) error {
	return s.st.PublicKeyPut(ctx, acct.ID, key)
}

// LookupKey returns owner's published key, or store.ErrNotFound.
func (s *Service) LookupKey(ctx context.Context, owner *store.Account) ([]byte, error) {
	return s.st.PublicKeyGet(ctx, owner.ID)
}

// bareAddress turns "sip:Bob@Example.com" into "Bob@example.com".
func bareAddress(uri string) string {
	uri = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(uri), "sip:"), "sips:")
	user, domain, ok := strings.Cut(uri, "@")
	if !ok {
		return strings.ToLower(uri)
	}
	return user + "@" + strings.ToLower(domain)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// newMessageID is the message id of a row cairn makes: a random UUID.
func NewMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&15])
	}
	return string(out)
}
