package sip

import (
	"slices"
	"strconv"
	"strings"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/store"
)

// defaultExpires is the lifetime of a binding that asks for none (RFC 3261 §10.3).
const defaultExpires = time.Hour

// binding is one Contact of a REGISTER, read and checked.
type binding struct {
	instance string
	contact  string
	expires  time.Duration
}

// onRegister is the registrar (RFC 3261 §10.3): the To address must be a
// local account, the request authenticated as that account; then each
// Contact is added, refreshed or removed, and the device is drained of the
// messages it is owed.
func (s *Server) onRegister(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
	ctx := s.requestCtx.get()
	to := req.To()
	if to == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(req, tx, 400, "Missing To, Call-ID or CSeq")
		return
	}
	domain := strings.ToLower(to.Address.Host)
	acct, ok := s.lookup(ctx, req, tx, to.Address.User, domain, "Domain Not Served Here")
	if !ok {
		return
	}
	who, ok := s.authenticate(ctx, req, tx, domain)
	if !ok {
		return
	}
	if who.ID != acct.ID {
		s.respond(req, tx, 403, "Credentials Do Not Match To")
		return
	}

	bindings, wildcard, status, reason := s.readBindings(req)
	if status != 0 {
		hdrs := []sipmsg.Header(nil)
		if status == 423 {
			hdrs = append(hdrs, sipmsg.NewHeader("Min-Expires", strconv.Itoa(int(s.cfg.MinExpires.Seconds()))))
		}
		s.respond(req, tx, status, reason, hdrs...)
		return
	}
	now := s.now()
	gen0, epoch0 := s.loc.generation(acct.ID)
	current, err := s.st.RegistrationList(ctx, acct.ID, now)
	if err != nil {
		s.storeFailed(req, tx, err)
		return
	}
	callID, cseq := req.CallID().Value(), req.CSeq().SeqNo
	var gen, epoch uint64 // of this REGISTER's last write, for the cache
	writes := uint64(0)
	if wildcard {
		for _, r := range current {
			if r.CallID == callID && cseq <= r.CSeq {
				s.respond(req, tx, 500, "Out Of Order CSeq")
				return
			}
		}
		err := s.st.RegistrationDeleteAll(ctx, acct.ID)
		gen, epoch = s.loc.invalidate(acct.ID)
		writes++
		if err != nil {
			s.storeFailed(req, tx, err)
			return
		}
		current = nil
	}
	added := 0
	for _, b := range bindings {
		var old *store.Registration
		for i := range current {
			if current[i].Instance == b.instance {
				old = &current[i]
			}
		}
		if old != nil && old.CallID == callID && cseq <= old.CSeq {
			s.respond(req, tx, 500, "Out Of Order CSeq")
			return
		}
		if old == nil && b.expires > 0 {
			added++
		}
	}
	if len(current)+added > s.cfg.MaxContacts {
		s.respond(req, tx, 403, "Too Many Contacts")
		return
	}
	ua := ""
	if h := req.GetHeader("User-Agent"); h != nil {
		ua = truncate(h.Value(), 256)
	}
	var drains []string
	next := current // the bindings after this REGISTER's writes
	for _, b := range bindings {
		next = slices.DeleteFunc(slices.Clone(next), func(r store.Registration) bool { return r.Instance == b.instance })
		if b.expires == 0 {
			err = s.st.RegistrationDelete(ctx, acct.ID, b.instance)
		} else {
			r := store.Registration{
				AccountID: acct.ID, Instance: b.instance, Contact: b.contact,
				Transport: strings.ToLower(req.Transport()), Source: req.Source(), Node: s.cfg.Node,
				CallID: callID, CSeq: cseq, UserAgent: ua, Expires: now.Add(b.expires).Truncate(time.Microsecond),
				UpdatedAt: now,
			}
			err = s.st.RegistrationPut(ctx, r)
			next = append(next, r)
			drains = append(drains, b.instance)
		}
		gen, epoch = s.loc.invalidate(acct.ID)
		writes++
		if err != nil {
			s.storeFailed(req, tx, err)
			return
		}
	}
	if len(bindings) > 0 || wildcard {
		// What the store holds after this REGISTER's writes goes to the
		// cache, for the drains below. When no other request of this node
		// wrote the account since the read above, that is what was read
		// with these writes applied; otherwise it is read again.
		if epoch == epoch0 && gen == gen0+writes {
			slices.SortFunc(next, func(a, b store.Registration) int { return strings.Compare(a.Instance, b.Instance) })
			current = next
		} else if current, err = s.st.RegistrationList(ctx, acct.ID, now); err != nil {
			s.storeFailed(req, tx, err)
			return
		}
		s.loc.set(acct.ID, current, gen, epoch)
	}
	res := sipmsg.NewResponseFromRequest(req, 200, "OK", nil)
	for _, r := range current {
		var c sipmsg.Uri
		if sipmsg.ParseUri(r.Contact, &c) != nil {
			continue
		}
		h := &sipmsg.ContactHeader{Address: c}
		h.Params.Add("expires", strconv.Itoa(int(max(r.Expires.Sub(now), 0)/time.Second)))
		if r.Instance != r.Contact {
			h.Params.Add("+sip.instance", `"`+r.Instance+`"`)
		}
		res.AppendHeader(h)
	}
	res.AppendHeader(sipmsg.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	s.send(req, tx, res)
	for _, instance := range drains {
		s.router.Drain(acct.ID, instance)
	}
}

// readBindings reads the Contacts of a REGISTER. It returns a SIP status
// other than 0 when the request is to be refused.
func (s *Server) readBindings(req *sipmsg.Request) (bs []binding, wildcard bool, status int, reason string) {
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sipmsg.ContactHeader)
		if !ok {
			return nil, false, 400, "Bad Contact"
		}
		if c.Address.Wildcard {
			wildcard = true
			continue
		}
		instance, err := instanceOf(c)
		if err != nil {
			return nil, false, 400, "Bad Contact"
		}
		exp, err := contactExpires(c, req, defaultExpires)
		if err != nil {
			return nil, false, 400, "Bad Expires"
		}
		switch {
		case exp == 0:
		case exp < s.cfg.MinExpires:
			return nil, false, 423, "Interval Too Brief"
		case exp > s.cfg.MaxExpires:
			exp = s.cfg.MaxExpires
		}
		bs = append(bs, binding{instance: instance, contact: c.Address.String(), expires: exp})
	}
	if wildcard {
		// RFC 3261 §10.3 step 6: "*" only alone, and only with Expires: 0.
		exp, err := contactExpires(&sipmsg.ContactHeader{}, req, -1)
		if len(bs) > 0 || err != nil || exp != 0 {
			return nil, false, 400, "Wildcard Contact Needs Expires 0"
		}
	}
	if len(bs) > s.cfg.MaxContacts {
		return nil, false, 403, "Too Many Contacts"
	}
	return bs, wildcard, 0, ""
}

// storeFailed answers 500 with Retry-After: the store did not answer.
func (s *Server) storeFailed(req *sipmsg.Request, tx sipmsg.ServerTransaction, err error) {
	s.log.Error("store failed", "method", req.Method, "err", err)
	s.respond(req, tx, 500, "Storage Unavailable", sipmsg.NewHeader("Retry-After", "5"))
}

// truncate cuts s to at most n bytes of valid UTF-8 without control
// characters, for the store's text columns.
func truncate(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
