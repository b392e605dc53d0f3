package engine

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func TestMicro(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		t          time.Time
		floor      int64
		ceil       time.Time
		ceilEquals bool
	}{
		{time.UnixMicro(100), 100, time.UnixMicro(100), true},
		{time.UnixMicro(100).Add(1), 100, time.UnixMicro(101), false},
		{time.UnixMicro(-100).Add(1), -100, time.UnixMicro(-99), false},
		{time.Time{}, time.Time{}.UnixMicro(), time.Time{}, true},
	} {
		if got := Micro(tt.t); got != tt.floor {
			t.Errorf("Micro(%v) = %d, want %d", tt.t, got, tt.floor)
		}
		got := CeilMicro(tt.t)
		if !got.Equal(tt.ceil) || got.Location() != time.UTC || got.Equal(tt.t) != tt.ceilEquals {
			t.Errorf("CeilMicro(%v) = %v, want %v in UTC", tt.t, got, tt.ceil)
		}
	}
}

func TestNewEnqueueRequest(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	valid := func() store.OfflineEnqueueParams {
		return store.OfflineEnqueueParams{
			Message:   store.OfflineMessage{AccountID: 1, Sender: "bob@example.com", Key: "k", Body: []byte{0, 0xff}, ExpiresAt: now.Add(time.Hour)},
			Delivered: []string{"d2", "d1", "d2"},
			Now:       now,
		}
	}
	r, err := NewEnqueueRequest(valid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Delivered, []string{"d2", "d1"}) {
		t.Errorf("Delivered = %v, want [d2 d1]", r.Delivered)
	}
	for _, tt := range []struct {
		name string
		edit func(p *store.OfflineEnqueueParams)
	}{
		{"empty key", func(p *store.OfflineEnqueueParams) { p.Message.Key = "" }},
		{"empty sender", func(p *store.OfflineEnqueueParams) { p.Message.Sender = "" }},
		{"NUL in date", func(p *store.OfflineEnqueueParams) { p.Message.Date = "\x00" }},
		{"long content type", func(p *store.OfflineEnqueueParams) { p.Message.ContentType = strings.Repeat("x", MaxText+1) }},
		{"big body", func(p *store.OfflineEnqueueParams) { p.Message.Body = make([]byte, MaxBody+1) }},
		{"expires at now", func(p *store.OfflineEnqueueParams) { p.Message.ExpiresAt = now }},
		{"expires after 9999", func(p *store.OfflineEnqueueParams) {
			p.Message.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		}},
		{"negative count", func(p *store.OfflineEnqueueParams) { p.MaxCount = -1 }},
		{"too many delivered", func(p *store.OfflineEnqueueParams) { p.Delivered = make([]string, MaxDelivered+1) }},
		{"empty delivered", func(p *store.OfflineEnqueueParams) { p.Delivered = []string{""} }},
	} {
		p := valid()
		tt.edit(&p)
		if _, err := NewEnqueueRequest(p); err == nil {
			t.Errorf("%s: NewEnqueueRequest accepted it", tt.name)
		}
	}
	p := valid()
	p.Message.Body = make([]byte, MaxBody)
	p.Message.From = strings.Repeat("é", MaxText/2)
	if _, err := NewEnqueueRequest(p); err != nil {
		t.Errorf("NewEnqueueRequest at the bounds: %v", err)
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	r := EnqueueRequest{P: store.OfflineEnqueueParams{Message: store.OfflineMessage{Body: make([]byte, 10)}, MaxCount: 3, MaxBytes: 100}}
	for _, tt := range []struct {
		count, bytes int64
		want         bool
	}{
		{0, 0, true}, {2, 90, true}, {3, 0, false}, {0, 91, false},
	} {
		if got := r.Quota(tt.count, tt.bytes); got != tt.want {
			t.Errorf("Quota(%d, %d) = %t, want %t", tt.count, tt.bytes, got, tt.want)
		}
	}
	if unbound := (EnqueueRequest{}); unbound.Limited() || !unbound.Quota(1<<40, 1<<60) {
		t.Errorf("a request without quota is limited")
	}
}

func TestMarkIDs(t *testing.T) {
	t.Parallel()
	p := store.OfflineMarkParams{MessageIDs: []int64{5, 3, 5, 1}, Instance: "d1", State: store.DeliveryDone}
	ids, err := MarkIDs(p)
	if err != nil || !slices.Equal(ids, []int64{1, 3, 5}) {
		t.Errorf("MarkIDs = %v, %v; want [1 3 5]", ids, err)
	}
	for _, bad := range []store.OfflineMarkParams{
		{MessageIDs: []int64{1}, Instance: "d1", State: 0},
		{MessageIDs: []int64{1}, Instance: "", State: store.DeliveryRetry},
		{MessageIDs: make([]int64, MaxMarkIDs+1), Instance: "d1", State: store.DeliveryRetry},
	} {
		if _, err := MarkIDs(bad); err == nil {
			t.Errorf("MarkIDs(%d ids, %q, state %d) accepted it", len(bad.MessageIDs), bad.Instance, bad.State)
		}
	}
}

func TestOwedIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ids  []int64
		want []int64
		ok   bool
	}{
		{"none", nil, nil, true},
		{"repeats, out of order", []int64{5, 3, 5, -1, 3}, []int64{-1, 3, 5}, true},
		{"at the bound", make([]int64, store.MaxOwedAccounts), []int64{0}, true},
		{"over the bound", make([]int64, store.MaxOwedAccounts+1), nil, false},
	}
	for _, tt := range tests {
		ids, err := OwedIDs(tt.ids)
		if (err == nil) != tt.ok || !slices.Equal(ids, tt.want) {
			t.Errorf("%s: OwedIDs = %v, %v; want %v, accepted %v", tt.name, ids, err, tt.want, tt.ok)
		}
	}
}

func TestCheckTraces(t *testing.T) {
	t.Parallel()
	ok := store.Trace{Time: time.Now(), Direction: "in", Status: 200, Message: []byte{0, 0xff}}
	if err := CheckTraces([]store.Trace{ok, ok}); err != nil {
		t.Errorf("CheckTraces: %v", err)
	}
	bad := ok
	bad.Status = 1000
	if err := CheckTraces([]store.Trace{ok, bad}); err == nil || !strings.Contains(err.Error(), "trace 1") {
		t.Errorf("CheckTraces = %v, want an error naming trace 1", err)
	}
}
