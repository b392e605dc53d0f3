package sip

import (
	"context"
	"errors"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/auth"
	"github.com/cairn-chat/cairn/store"
)

// authenticate checks the credentials of req for realm: Authorization for a
// REGISTER (401 challenges), Proxy-Authorization for anything else (407).
// When it returns false it has answered req.
func (s *Server) authenticate(ctx context.Context, req *sipmsg.Request, tx sipmsg.ServerTransaction, realm string) (store.Account, bool) {
	header, challenge, code, reason := "Proxy-Authorization", "Proxy-Authenticate", 407, "Proxy Authentication Required"
	if req.Method == sipmsg.REGISTER {
		header, challenge, code, reason = "Authorization", "WWW-Authenticate", 401, "Unauthorized"
	}
	challengeWith := func(stale bool) {
		var hdrs []sipmsg.Header
		for _, c := range auth.Challenges(s.digest, realm, stale, s.cfg.Algorithms...) {
			hdrs = append(hdrs, sipmsg.NewHeader(challenge, c))
		}
		s.respond(req, tx, code, reason, hdrs...)
		// A challenge is stateless, as a proxy sends it: a retransmission
		// of req gets a fresh one. Kept, the transaction would hold req and
		// its answer for Timer J (32 s over UDP), and most transactions
		// of a registrar are challenged.
		tx.Terminate()
	}
	var answer *auth.DigestResponse
	for _, h := range req.GetHeaders(header) {
		d, err := auth.ParseDigest(h.Value())
		if err == nil && strings.EqualFold(d.Realm, realm) {
			answer = &d
			break
		}
	}
	if answer == nil || !sameTarget(answer.URI, &req.Recipient) {
		challengeWith(false)
		return store.Account{}, false
	}
	acct, err := s.digest.Verify(ctx, string(req.Method), *answer, realm)
	switch {
	case err == nil:
		return acct, true
	case errors.Is(err, auth.ErrStale):
		challengeWith(true)
	case errors.Is(err, auth.ErrBadCredentials):
		s.metrics.authFailures.Inc()
		challengeWith(false)
	default:
		s.log.Error("authentication failed: store error", "err", err)
		s.respond(req, tx, 500, "Server Error", sipmsg.NewHeader("Retry-After", "5"))
	}
	return store.Account{}, false
}

// sameTarget reports whether a digest uri names the request's target host:
// clients write the Request-URI in several forms, but never another host.
func sameTarget(uri string, target *sipmsg.Uri) bool {
	var u sipmsg.Uri
	if err := sipmsg.ParseUri(uri, &u); err != nil {
		return false
	}
	return strings.EqualFold(u.Host, target.Host)
}
