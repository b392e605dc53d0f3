package sip

import (
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/delivery"
	"github.com/cairn-chat/cairn/offline"
	"github.com/cairn-chat/cairn/store"
)

// onMessage routes a MESSAGE (RFC 3428) to a local user: the sender, when
// local, must authenticate as the From address; the message goes to every
// device of the recipient, and what no device took is stored before the
// sender is answered.
func (s *Server) onMessage(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	ctx := s.messageCtx.get()
	from, to, callID, cseq := req.From(), req.To(), req.CallID(), req.CSeq()
	if from == nil || to == nil || callID == nil || cseq == nil {
		s.respond(req, tx, 400, "Missing From, To, Call-ID or CSeq")
		return
	}
	body := req.Body()
	if len(body) > s.cfg.MaxBody {
		s.respond(req, tx, 413, "Message Too Large")
		return
	}
	ctype := req.ContentType()
	if len(body) == 0 || ctype == nil || strings.TrimSpace(ctype.Value()) == "" {
		s.respond(req, tx, 400, "Empty MESSAGE Or No Content-Type")
		return
	}
	if v := ctype.Value(); len(v) > maxContentType || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		s.respond(req, tx, 400, "Bad Content-Type")
		return
	}
	lifetime, hasExpires, err := messageExpires(req)
	if err != nil {
		s.respond(req, tx, 400, "Bad Expires")
		return
	}

	target := &req.Recipient
	domain := strings.ToLower(target.Host)
	rcpt, ok := s.lookup(ctx, req, tx, target.User, domain, "Relaying Denied")
	if !ok {
		return
	}

	sender := addrOf(&from.Address)
	if sender == "" || len(sender) > maxAddrLen {
		s.respond(req, tx, 400, "Bad From")
		return
	}
	var senderAcct *store.Account // the sending account, when it is one of ours
	if s.trusted(req) {
		// The trusted proxy authenticated its local senders.
		if a, err := s.st.AccountGet(ctx, from.Address.User, strings.ToLower(from.Address.Host)); err == nil {
			senderAcct = &a
		}
	} else {
		// Only local senders come straight to cairn; they prove who they are.
		fromDomain := strings.ToLower(from.Address.Host)
		local, err := s.local(ctx, fromDomain)
		if err != nil {
			s.storeFailed(req, tx, err)
			return
		}
		if !local {
			s.respond(req, tx, 403, "Sender Domain Not Served Here")
			return
		}
		acct, ok := s.authenticate(ctx, req, tx, fromDomain)
		if !ok {
			return
		}
		if acct.User != from.Address.User || acct.Domain != fromDomain {
			s.respond(req, tx, 403, "Credentials Do Not Match From")
			return
		}
		senderAcct = &acct
	}

	var c content
	tracked := false
	if s.history != nil {
		c = contentOf(ctype.Value(), body, s.now())
		if s.historyControl(ctx, req, tx, senderAcct, rcpt, c) {
			return
		}
		// Journaled before any answer: a 2xx means the history has it.
		if tracked, err = s.historyRecord(ctx, senderAcct, rcpt, strings.ToLower(sender), c); err != nil {
			s.storeFailed(req, tx, err)
			return
		}
	}

	date := s.now().UTC().Format(http.TimeFormat)
	if h := req.GetHeader("Date"); h != nil {
		date = truncate(h.Value(), 64)
	}
	m := &delivery.Message{
		AccountID:   rcpt.ID,
		Sender:      strings.ToLower(sender),
		From:        truncate(withoutTag(from.Address, from.DisplayName, from.Params), 1024),
		To:          truncate(withoutTag(to.Address, to.DisplayName, to.Params), 1024),
		Date:        date,
		ContentType: ctype.Value(),
		Body:        body,
		Key:         dedupKey(ctype.Value(), body, callID.Value(), cseq.SeqNo),
	}
	if hasExpires && lifetime > 0 {
		// Expires: 0 sets no lifetime; RFC 3428 gives it no meaning.
		m.Expires = lifetime
	}
	rep, err := s.router.Deliver(ctx, m)
	code, reason, answered := 200, "OK", false
	switch {
	case errors.Is(err, offline.ErrTooLarge):
		code, reason = 413, "Message Too Large"
	case errors.Is(err, store.ErrQuota):
		s.metrics.messages.WithLabelValues("refused").Inc()
		code, reason = 486, "Recipient Offline Storage Full"
	case err != nil:
		s.storeFailed(req, tx, err)
		code, reason, answered = 500, "Storage Unavailable", true
	case rep.Stored:
		s.metrics.messages.WithLabelValues("stored").Inc()
		if s.cfg.StoredStatus == 202 {
			code, reason = 202, "Accepted"
		}
	case rep.Delivered > 0:
		s.metrics.messages.WithLabelValues("delivered").Inc()
	default:
		s.metrics.messages.WithLabelValues("refused").Inc()
		code, reason = rep.Refusal.Code, rep.Refusal.Reason
	}
	if !answered {
		s.respond(req, tx, code, reason)
	}
	if !tracked {
		return
	}
	// The sender's devices learn the outcome from the history, and its
	// other devices get a copy of what it sent (blink.md §8 case 45).
	s.history.Outcome(senderAcct, rcpt.Address(), c.messageID, c.timestamp, code, reason)
	if code/100 == 2 {
		dup := *m
		dup.AccountID, dup.Replicated, dup.Key = senderAcct.ID, true, ""
		s.sendCopies(s.others(ctx, senderAcct.ID, req), &dup)
	}
}
