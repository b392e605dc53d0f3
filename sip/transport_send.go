package sip

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/cairn-chat/cairn/delivery"
	"github.com/cairn-chat/cairn/store"
)

// Devices returns the devices registered now for an account; it is the
// delivery.Locator of SIP devices.
func (s *Server) Devices(ctx context.Context, accountID int64) ([]delivery.Device, error) {
	regs, err := s.loc.list(ctx, accountID)
	if err != nil {
		return nil, err
	}
	ds := make([]delivery.Device, len(regs))
	for i, r := range regs {
		ds[i] = delivery.Device{Instance: r.Instance, Route: r}
	}
	return ds, nil
}

// Send writes m as a MESSAGE to the contact of d, over the connection the
// device registered on for stream transports and from the UDP listener
// otherwise, and returns a function that waits for the final answer. A
// stored message gets a Call-ID made from its id and the device, so that a
// device that is sent it twice (after a crash between its 2xx and our
// record of it) sees the same Call-ID and can drop the copy.
func (s *Server) Send(ctx context.Context, d delivery.Device, m *delivery.Message) func() delivery.Outcome {
	fail := func(code int, reason string) func() delivery.Outcome {
		return func() delivery.Outcome { return delivery.Outcome{State: delivery.Failed, Code: code, Reason: reason} }
	}
	// A message that cannot be written at all would fail the same way on
	// every retry.
	refuse := func(reason string) func() delivery.Outcome {
		return func() delivery.Outcome { return delivery.Outcome{State: delivery.Rejected, Code: 400, Reason: reason} }
	}
	// Not blocking: a handler sending holds running already, and Stop may
	// be waiting for it.
	if !s.running.TryRLock() {
		return fail(503, "Shutting Down")
	}
	sent := false
	defer func() {
		if !sent {
			s.running.RUnlock()
		}
	}()
	r := d.Route.(store.Registration)
	var target sipmsg.Uri
	if err := sipmsg.ParseUri(r.Contact, &target); err != nil {
		return refuse("Bad Contact")
	}
	req := sipmsg.NewRequest(sipmsg.MESSAGE, target)
	req.SetTransport(strings.ToUpper(r.Transport))
	req.SetDestination(r.Source)
	if r.Transport == "udp" && s.udpLocal.IP != nil {
		req.Laddr = s.udpLocal
	}
	var from sipmsg.FromHeader
	if err := parseNameAddr(m.From, &from.Address, &from.DisplayName, &from.Params); err != nil {
		return refuse("Bad From")
	}
	from.Params.Add("tag", sipmsg.GenerateTagN(16))
	var to sipmsg.ToHeader
	if err := parseNameAddr(m.To, &to.Address, &to.DisplayName, &to.Params); err != nil {
		return refuse("Bad To")
	}
	callID := sipmsg.CallIDHeader(newCallID())
	if m.ID != 0 {
		callID = sipmsg.CallIDHeader(storedCallID(m.ID, d.Instance))
	}
	maxFwd := sipmsg.MaxForwardsHeader(70)
	ctype := sipmsg.ContentTypeHeader(m.ContentType)
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sipmsg.CSeqHeader{SeqNo: 1, MethodName: sipmsg.MESSAGE})
	req.AppendHeader(&maxFwd)
	if m.Date != "" {
		req.AppendHeader(sipmsg.NewHeader("Date", m.Date))
	}
	if m.Replicated {
		// Blink files it as sent by the account (blink.md §6.3).
		req.AppendHeader(sipmsg.NewHeader("X-Replicated-Message", "yes"))
	}
	req.AppendHeader(&ctype)
	req.SetBody(m.Body)

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	tx, err := s.client.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		cancel()
		s.log.Debug("MESSAGE not sent", "transport", r.Transport, "err", err)
		return fail(503, "Device Unreachable")
	}
	s.tracer.out(req, r.Transport, r.Source)
	sent = true
	return func() delivery.Outcome {
		defer s.running.RUnlock()
		defer cancel()
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if res.IsProvisional() {
					continue
				}
				return outcomeOf(res.StatusCode, res.Reason)
			case <-tx.Done():
				return delivery.Outcome{State: delivery.Failed, Code: 408, Reason: "Request Timeout"}
			case <-ctx.Done():
				return delivery.Outcome{State: delivery.Failed, Code: 408, Reason: "Request Timeout"}
			}
		}
	}
}

// outcomeOf classes a device's final answer: 2xx took it; a timeout,
// 480, 503 or other 5xx may pass, so it is tried again later; anything else
// refuses this message for good (it would be refused again).
func outcomeOf(code int, reason string) delivery.Outcome {
	o := delivery.Outcome{Code: code, Reason: reason}
	switch {
	case code >= 200 && code < 300:
		o.State = delivery.Delivered
	case code == 408 || code == 480 || (code >= 500 && code < 600):
		o.State = delivery.Failed
	default:
		o.State = delivery.Rejected
	}
	return o
}

// parseNameAddr parses a From or To header value as stored.
func parseNameAddr(v string, uri *sipmsg.Uri, display *string, params *sipmsg.HeaderParams) error {
	name, err := sipmsg.ParseAddressValue(v, uri, params)
	*display = name
	return err
}

// storedCallID is the Call-ID of every send of stored message id to one
// device.
func storedCallID(id int64, instance string) string {
	h := sha256.Sum256([]byte(strconv.FormatInt(id, 10) + "\x00" + instance))
	return hex.EncodeToString(h[:16]) + "@cairn"
}

func newCallID() string {
	return sipmsg.GenerateTagN(32) + "@cairn"
}
