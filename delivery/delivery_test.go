package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// locator returns devices, or err.
type locator struct {
	devices []Device
	err     error
}

func (l locator) Devices(context.Context, int64) ([]Device, error) { return l.devices, l.err }

// transport answers each device with outcomes[instance] and records, in
// order, every Send ("send d1") and every call of a wait function ("wait d1").
type transport struct {
	outcomes map[string]Outcome

	mu     sync.Mutex
	events []string
}

func (tr *transport) Send(_ context.Context, d Device, _ *Message) func() Outcome {
	tr.record("send " + d.Instance)
	return func() Outcome {
		tr.record("wait " + d.Instance)
		return tr.outcomes[d.Instance]
	}
}

func (tr *transport) record(e string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, e)
}

// spool records the calls of Store and returns err.
type spool struct {
	err   error
	calls []spoolCall
}

type spoolCall struct {
	m                 *Message
	delivered, failed []string
}

func (s *spool) Store(_ context.Context, m *Message, delivered, failed []string) error {
	s.calls = append(s.calls, spoolCall{m, delivered, failed})
	return s.err
}

func devices(instances ...string) []Device {
	ds := make([]Device, len(instances))
	for i, in := range instances {
		ds[i] = Device{Instance: in, Route: "route-" + in}
	}
	return ds
}

var (
	ok        = Outcome{State: Delivered, Code: 200, Reason: "OK"}
	timeout   = Outcome{State: Failed, Code: 408, Reason: "Request Timeout"}
	busy      = Outcome{State: Failed, Code: 503, Reason: "Service Unavailable"}
	notFound  = Outcome{State: Rejected, Code: 404, Reason: "Not Found"}
	forbidden = Outcome{State: Rejected, Code: 403, Reason: "Forbidden"}
	media     = Outcome{State: Rejected, Code: 415, Reason: "Unsupported Media Type"}
	decline   = Outcome{State: Rejected, Code: 603, Reason: "Decline"}
)

func TestDeliver(t *testing.T) {
	t.Parallel()
	errSpool := errors.New("spool down")
	errLocator := errors.New("locator down")
	tests := []struct {
		name      string
		loc       locator
		outcomes  map[string]Outcome
		spoolErr  error
		want      Report
		wantErr   error
		stored    bool // Spool.Store is called
		delivered []string
		failed    []string
	}{
		{
			name:   "no device",
			want:   Report{Stored: true},
			stored: true,
		},
		{
			name:     "every device took it",
			loc:      locator{devices: devices("d1", "d2", "d3")},
			outcomes: map[string]Outcome{"d1": ok, "d2": ok, "d3": ok},
			want:     Report{Delivered: 3},
		},
		{
			name:     "every device refused, the lowest code",
			loc:      locator{devices: devices("d1", "d2", "d3")},
			outcomes: map[string]Outcome{"d1": notFound, "d2": forbidden, "d3": media},
			want:     Report{Refusal: forbidden},
		},
		{
			name:     "every device refused, a 6xx wins",
			loc:      locator{devices: devices("d1", "d2", "d3")},
			outcomes: map[string]Outcome{"d1": forbidden, "d2": decline, "d3": notFound},
			want:     Report{Refusal: decline},
		},
		{
			name:     "delivered and refused",
			loc:      locator{devices: devices("d1", "d2")},
			outcomes: map[string]Outcome{"d1": notFound, "d2": ok},
			want:     Report{Delivered: 1},
		},
		{
			name:     "one device failed",
			loc:      locator{devices: devices("d1")},
			outcomes: map[string]Outcome{"d1": timeout},
			want:     Report{Stored: true},
			stored:   true,
			failed:   []string{"d1"},
		},
		{
			name:      "an outcome without a state counts as failed",
			loc:       locator{devices: devices("d1", "d2")},
			outcomes:  map[string]Outcome{"d1": ok}, // d2: the zero Outcome
			want:      Report{Delivered: 1, Stored: true},
			stored:    true,
			delivered: []string{"d1"},
			failed:    []string{"d2"},
		},
		{
			name:     "refused and failed",
			loc:      locator{devices: devices("d1", "d2")},
			outcomes: map[string]Outcome{"d1": decline, "d2": busy},
			want:     Report{Stored: true}, // no Refusal: the message is kept
			stored:   true,
			failed:   []string{"d2"},
		},
		{
			name: "delivered, failed and refused",
			loc:  locator{devices: devices("d1", "d2", "d3", "d4", "d5")},
			outcomes: map[string]Outcome{
				"d1": ok, "d2": timeout, "d3": notFound, "d4": ok, "d5": busy,
			},
			want:      Report{Delivered: 2, Stored: true},
			stored:    true,
			delivered: []string{"d1", "d4"},
			failed:    []string{"d2", "d5"},
		},
		{
			name:      "spool error",
			loc:       locator{devices: devices("d1", "d2")},
			outcomes:  map[string]Outcome{"d1": ok, "d2": timeout},
			spoolErr:  errSpool,
			want:      Report{Delivered: 1},
			wantErr:   errSpool,
			stored:    true,
			delivered: []string{"d1"},
			failed:    []string{"d2"},
		},
		{
			name:     "spool error, no device",
			spoolErr: errSpool,
			want:     Report{},
			wantErr:  errSpool,
			stored:   true,
		},
		{
			name:    "locator error",
			loc:     locator{devices: devices("d1"), err: errLocator},
			want:    Report{},
			wantErr: errLocator,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := &transport{outcomes: tt.outcomes}
			sp := &spool{err: tt.spoolErr}
			m := &Message{AccountID: 7, Body: []byte("hi")}
			got, err := New(tt.loc, tr, sp).Deliver(t.Context(), m)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Errorf("Deliver error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Deliver = %+v, want %+v", got, tt.want)
			}
			switch {
			case !tt.stored && len(sp.calls) != 0:
				t.Errorf("Spool.Store called %d times, want none", len(sp.calls))
			case tt.stored && len(sp.calls) != 1:
				t.Errorf("Spool.Store called %d times, want once", len(sp.calls))
			case tt.stored:
				c := sp.calls[0]
				if c.m != m {
					t.Errorf("Spool.Store got message %p, want %p", c.m, m)
				}
				if !slices.Equal(c.delivered, tt.delivered) || !slices.Equal(c.failed, tt.failed) {
					t.Errorf("Spool.Store(delivered %q, failed %q), want (%q, %q)",
						c.delivered, c.failed, tt.delivered, tt.failed)
				}
			}
			if tt.loc.err != nil && len(tr.events) != 0 {
				t.Errorf("sent after a locator error: %q", tr.events)
			}
			if tt.loc.err == nil {
				checkSendsFirst(t, tr.events, tt.loc.devices)
			}
		})
	}
}

// TestDeliverSendsFirst checks that every device is written to before the
// first wait: sends to slow devices do not queue behind each other.
func TestDeliverSendsFirst(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			ds := make([]Device, n)
			outcomes := map[string]Outcome{}
			for i := range ds {
				ds[i] = Device{Instance: fmt.Sprintf("d%d", i)}
				outcomes[ds[i].Instance] = ok
			}
			tr := &transport{outcomes: outcomes}
			if _, err := New(locator{devices: ds}, tr, &spool{}).Deliver(t.Context(), &Message{}); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			checkSendsFirst(t, tr.events, ds)
		})
	}
}

// checkSendsFirst checks that events hold one send per device, all of them
// before the first wait, and exactly one wait per device.
func checkSendsFirst(t *testing.T, events []string, ds []Device) {
	t.Helper()
	var want []string
	for _, d := range ds {
		want = append(want, "send "+d.Instance)
	}
	if len(events) < len(want) || !slices.Equal(events[:len(want)], want) {
		t.Errorf("events %q, want the sends %q first", events, want)
		return
	}
	waits := slices.Clone(events[len(want):])
	for i, e := range waits {
		waits[i] = strings.TrimPrefix(e, "wait ")
	}
	slices.Sort(waits)
	var instances []string
	for _, d := range ds {
		instances = append(instances, d.Instance)
	}
	slices.Sort(instances)
	if !slices.Equal(waits, instances) {
		t.Errorf("events %q, want one wait per device after the sends", events)
	}
}

func TestBetter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b int
		want bool
	}{
		{603, 404, true},  // a 6xx beats any 4xx
		{404, 603, false}, //
		{600, 400, true},  // even a lower 4xx
		{403, 404, true},  // else the lowest code
		{404, 403, false}, //
		{415, 488, true},  //
		{600, 603, true},  // the lowest 6xx
		{606, 600, false}, //
		{404, 404, false}, // a tie keeps the first
		{603, 603, false}, //
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d vs %d", tt.a, tt.b), func(t *testing.T) {
			t.Parallel()
			a, b := Outcome{State: Rejected, Code: tt.a}, Outcome{State: Rejected, Code: tt.b}
			if got := better(a, b); got != tt.want {
				t.Errorf("better(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
