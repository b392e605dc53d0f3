package replication_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-chat/cairn/internal/app"
	"github.com/cairn-chat/cairn/internal/app/apptest"
	rt "github.com/cairn-chat/cairn/replication/replicationtest"
)

// TestCurlInterop drives the journal with curl, an HTTP Digest and Basic
// implementation independent of ours: a put and a get over Digest (curl
// answers the first challenge, MD5) with the web and the SIP password, and
// Basic over HTTPS with the generated certificate.
func TestCurlInterop(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (.ci/run installs it)")
	}
	s := apptest.Start(t, apptest.Engines[0], nil,
		apptest.Account{Address: alice, Passwords: app.Passwords{SIP: sipPW, Web: webPW}})
	run := func(args ...string) map[string]json.RawMessage {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"--silent", "--show-error", "--fail"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
		}
		var answer map[string]json.RawMessage
		if err := json.Unmarshal(out, &answer); err != nil || string(answer["success"]) != "true" {
			t.Fatalf("curl %s: answer %s", strings.Join(args, " "), out)
		}
		return answer
	}

	blob := rt.Encrypt(replPW, rt.NewEntry("m1", "Hello from curl", s.Clock.Now()).JSON())
	put := run("--digest", "--user", "alice:"+webPW,
		"--data-urlencode", "uuid="+dev1, "--data-urlencode", "data="+rt.EntriesObject(rt.Item{ID: "m1", Data: blob}),
		s.HTTPURL+settings+"?action=put_journal_entries&realm=example.com")
	var results []struct{ ID, JournalID string }
	if err := json.Unmarshal(put["results"], &results); err != nil || len(results) != 1 || results[0].ID != "m1" {
		t.Fatalf("put results %s", put["results"])
	}

	var rows []struct{ Data string }
	get := run("--digest", "--user", "alice:"+sipPW,
		s.HTTPURL+settings+"?action=get_journal_entries&realm=example.com&except_uuid="+dev2)
	if err := json.Unmarshal(get["results"], &rows); err != nil || len(rows) != 1 || rows[0].Data != blob {
		t.Fatalf("get over Digest: results %s", get["results"])
	}
	get = run("--basic", "--user", "alice@example.com:"+webPW, "--cacert", filepath.Join(s.Config.DataDir, "tls", "cert.pem"),
		s.HTTPSURL+settings+"?action=get_journal_entries&realm=example.com")
	if err := json.Unmarshal(get["results"], &rows); err != nil || len(rows) != 1 || rows[0].Data != blob {
		t.Fatalf("get over Basic and TLS: results %s", get["results"])
	}

	// A wrong password is refused by Digest and Basic alike.
	for _, args := range [][]string{
		{"--digest", "--user", "alice:wrong-password", s.HTTPURL + settings + "?action=get_history&realm=example.com"},
		{"--basic", "--user", "alice:" + webPW, s.HTTPURL + settings + "?action=get_history&realm=example.com"}, // Basic without TLS
	} {
		out, err := exec.Command(curl, append([]string{"--silent", "--output", "/dev/null", "--write-out", "%{http_code}"}, args...)...).Output()
		if err != nil || string(out) != "401" {
			t.Errorf("curl %s: %s %v, want 401", strings.Join(args, " "), out, err)
		}
	}
}
