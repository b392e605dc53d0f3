package sip

import (
	"context"
	"errors"
	"mime"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/delivery"
	"github.com/cairn-chat/cairn/history"
	"github.com/cairn-chat/cairn/store"
)

// SetHistory makes the server keep its accounts' message history in h and
// answer the history API requests Blink sends as MESSAGEs (sylk.md §4.2).
func (s *Server) SetHistory(h *history.Service) { s.history = h }

// content is what a MESSAGE carries, CPIM opened: the content's own type
// (lower case, no parameters), the content, and the IMDN fields.
type content struct {
	baseType    string
	contentType string
	body        []byte
	messageID   string
	timestamp   time.Time
	disposition []string
}

// contentOf opens a MESSAGE body: the CPIM payload when it is CPIM (a body
// that does not parse is kept whole), else the body itself, which gets a
// message id of its own.
func contentOf(ctype string, body []byte, now time.Time) content {
	c := content{contentType: ctype, body: body, timestamp: now}
	if IsCPIM(ctype) {
		if m, err := ParseCPIM(body); err == nil {
			c.contentType, c.body, c.messageID, c.disposition = m.ContentType, m.Content, m.MessageID, m.Disposition
			if t, err := time.Parse(time.RFC3339Nano, m.DateTime); err == nil {
				c.timestamp = t
			}
		}
	}
	if c.messageID == "" {
		c.messageID = history.NewMessageID()
	}
	c.baseType, _, _ = mime.ParseMediaType(c.contentType)
	if c.baseType == "" {
		c.baseType = strings.ToLower(strings.TrimSpace(c.contentType))
	}
	return c
}

// historyControl answers the history API requests (a token, a key, a
// removal, a conversation read or removed). It reports whether it answered
// req; such requests are never delivered to devices.
func (s *Server) historyControl(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction, sender *store.Account, rcpt store.Account, c content) bool {
	switch c.baseType {
	case history.TypeToken, history.TypeKeyLookup, history.TypeMessageRemove,
		history.TypeConversationRead, history.TypeConversationRemove:
	default:
		return false
	}
	if sender == nil {
		s.respond(req, tx, 403, "History Requests Only From Local Accounts")
		return true
	}
	switch c.baseType {
	case history.TypeToken:
		// A token goes only to the account that asks for its own: Blink
		// takes a token from anyone (blink.md §6.3).
		if sender.ID != rcpt.ID {
			s.respond(req, tx, 403, "Token Requests Only From The Account Itself")
			return true
		}
		devices, device := s.requester(ctx, sender.ID, req)
		reply, err := s.history.IssueToken(ctx, *sender, device)
		if err != nil {
			s.storeFailed(req, tx, err)
			return true
		}
		s.respond(req, tx, 200, "OK")
		s.sendCopies(devices, &delivery.Message{AccountID: sender.ID, From: "<sip:" + sender.Address() + ">",
			To: "<sip:" + sender.Address() + ">", ContentType: history.TypeToken, Body: reply})
	case history.TypeKeyLookup:
		key, err := s.history.LookupKey(ctx, &rcpt)
		if errors.Is(err, store.ErrNotFound) {
			s.respond(req, tx, 404, "No Public Key")
			return true
		}
		if err != nil {
			s.storeFailed(req, tx, err)
			return true
		}
		s.respond(req, tx, 200, "OK")
		devices, _ := s.requester(ctx, sender.ID, req)
		s.sendCopies(devices, &delivery.Message{AccountID: sender.ID, From: "<sip:" + rcpt.Address() + ">",
			To: "<sip:" + sender.Address() + ">", ContentType: history.TypePublicKey, Body: key})
	default:
		var peer *store.Account
		if rcpt.ID != sender.ID {
			peer = &rcpt
		}
		err := s.history.Control(ctx, sender, peer, rcpt.Address(), c.baseType, c.body)
		switch {
		case err == nil:
			s.respond(req, tx, 200, "OK")
		case errors.Is(err, history.ErrBadRequest):
			s.respond(req, tx, 400, "Malformed History Request")
		case errors.Is(err, history.ErrNotOwner):
			s.respond(req, tx, 403, "Only The Sender Removes A Message")
		case errors.Is(err, store.ErrNotFound):
			s.respond(req, tx, 404, "No Such Message")
		default:
			s.storeFailed(req, tx, err)
		}
	}
	return true
}

// historyRecord stores the history rows of a MESSAGE before it is
// answered. It reports whether the message is one the sender's devices
// track (a user message, whose outcome and copies follow).
func (s *Server) historyRecord(ctx context.Context, sender *store.Account, rcpt store.Account, from string, c content) (tracked bool, err error) {
	switch c.baseType {
	case history.TypeComposing:
		return false, nil
	case history.TypeIMDN:
		n, err := history.ParseIMDN(c.body)
		if err != nil {
			return false, nil // delivered as it is, journaled as nothing
		}
		return false, s.history.Notify(ctx, sender, &rcpt, from, rcpt.Address(), n)
	case history.TypePublicKey:
		if sender != nil {
			return false, s.history.PublishKey(ctx, sender, c.body)
		}
		return false, nil
	}
	return sender != nil, s.history.Record(ctx, history.Message{
		Sender: sender, Recipient: &rcpt, From: from, To: rcpt.Address(),
		MessageID: c.messageID, ContentType: c.contentType, Content: c.body,
		Timestamp: c.timestamp, Disposition: c.disposition,
	})
}

// requester returns the devices of an account that a request should be
// answered on: the one it came from when it is registered, else all of
// them; device names the requester.
func (s *Server) requester(ctx context.Context, accountID int64, req *sipmsg.Request) ([]delivery.Device, string) {
	devices, err := s.Devices(ctx, accountID)
	if err != nil {
		return nil, ""
	}
	for _, d := range devices {
		if r := d.Route.(store.Registration); r.Source == req.Source() && strings.EqualFold(r.Transport, req.Transport()) {
			return []delivery.Device{d}, d.Instance
		}
	}
	return devices, req.Source()
}

// others returns the account's devices other than the one req came from.
func (s *Server) others(ctx context.Context, accountID int64, req *sipmsg.Request) []delivery.Device {
	devices, err := s.Devices(ctx, accountID)
	if err != nil {
		return nil
	}
	out := devices[:0]
	for _, d := range devices {
		if r := d.Route.(store.Registration); r.Source != req.Source() || !strings.EqualFold(r.Transport, req.Transport()) {
			out = append(out, d)
		}
	}
	return out
}

// sendCopies sends m to each device without waiting: a device that misses
// it finds it in the history.
func (s *Server) sendCopies(devices []delivery.Device, m *delivery.Message) {
	for _, d := range devices {
		wait := s.Send(s.ctx, d, m)
		go wait()
	}
}
