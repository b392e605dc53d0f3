package app_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	"github.com/cairn-chat/cairn/internal/config"
	"github.com/cairn-chat/cairn/internal/tlsutil"
	"github.com/cairn-chat/cairn/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSweepRemovesExpiredRows checks the background sweep: it deletes rows
// past retention without anyone asking, on both engines.
func TestSweepRemovesExpiredRows(t *testing.T) {
	t.Parallel()
	for _, eng := range apptest.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			t.Parallel()
			s := apptest.Start(t, eng, func(c *config.Config) { c.SweepInterval = config.Duration(time.Second) })
			ctx := context.Background()
			st, err := app.OpenStore(ctx, s.Config, s.Clock.Now, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			a := store.Account{User: "alice", Domain: "example.com", Credentials: []byte{1}}
			if err := st.AccountCreate(ctx, &a); err != nil {
				t.Fatal(err)
			}
			put := func(msgID string) {
				t.Helper()
				if _, err := st.JournalPut(ctx, store.JournalPutParams{AccountID: a.ID, Device: "d", IP: "::1",
					Items: []store.JournalItem{{MsgID: msgID, Data: "blob " + msgID}}}); err != nil {
					t.Fatal(err)
				}
			}
			put("old")
			s.Clock.Advance(2 * 24 * time.Hour)
			put("young")
			s.Clock.Advance(59 * 24 * time.Hour) // old is 61 days old, young 59

			all := store.JournalQuery{AccountID: a.ID, Limit: 10} // no Since: every row stored
			deadline := time.Now().Add(10 * time.Second)
			for {
				rows, err := st.JournalList(ctx, all)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) == 1 && rows[0].MsgID == "young" {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 10 s the sweep left %d rows, want only the 59-day-old one", len(rows))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestHealthz checks that /healthz reports a node that serves and its store.
func TestHealthz(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, apptest.Engines[0], nil)
	for _, base := range []struct {
		url string
		c   *http.Client
	}{{s.HTTPURL, s.HTTP}, {s.HTTPSURL, s.HTTPS}} {
		resp, err := base.c.Get(base.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s/healthz = %d", base.url, resp.StatusCode)
		}
	}
	// Once stopped, nothing answers and Stop stays harmless.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Node.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if resp, err := s.HTTP.Get(s.HTTPURL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("healthz answered after Stop")
	}
}

// TestConfiguredCertificate checks HTTPS with http.cert_file and
// http.key_file set, which are served through the reloader.
func TestConfiguredCertificate(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, apptest.Engines[0], func(c *config.Config) {
		dir := filepath.Join(c.DataDir, "tls") // where apptest's client looks for the CA
		if _, _, err := tlsutil.SelfSigned(dir, time.Now()); err != nil {
			t.Fatal(err)
		}
		c.HTTP.CertFile, c.HTTP.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	})
	resp, err := s.HTTPS.Get(s.HTTPSURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over HTTPS = %d", resp.StatusCode)
	}
}
