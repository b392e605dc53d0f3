package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cairn-chat/cairn/store"
)

func testAccounts(t *testing.T, open opener) {
	t.Run("CreateGet", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		tests := []struct {
			name string
			a    store.Account
		}{
			{"typical", store.Account{User: "alice", Domain: "example.com", Credentials: []byte{0, 1, 0xfe, 0xff}, WebHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"}},
			{"no secrets", store.Account{User: "bob", Domain: "example.org"}},
			{"non-ASCII", store.Account{User: "zoë", Domain: "bücher.example", Credentials: []byte("sealed")}},
		}
		ids := map[int64]string{}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				clock.Advance(1500 * time.Millisecond)
				now := clock.Now().Truncate(time.Microsecond)
				a := tt.a
				if err := s.AccountCreate(t.Context(), &a); err != nil {
					t.Fatalf("AccountCreate: %v", err)
				}
				if a.ID <= 0 || ids[a.ID] != "" {
					t.Errorf("ID = %d, want a positive id not given before (%v)", a.ID, ids)
				}
				ids[a.ID] = tt.name
				want := tt.a
				want.ID, want.CreatedAt, want.UpdatedAt = a.ID, now, now
				checkAccount(t, a, want)
				got, err := s.AccountGet(t.Context(), tt.a.User, tt.a.Domain)
				if err != nil {
					t.Fatalf("AccountGet: %v", err)
				}
				checkAccount(t, got, want)
			})
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		alice := mustAccount(t, s, "alice", "example.com")
		tests := []struct {
			name         string
			user, domain string
			want         error
		}{
			{"same address", "alice", "example.com", store.ErrConflict},
			{"other domain", "alice", "example.org", nil},
			{"other user", "bob", "example.com", nil},
			{"user differs in case", "Alice", "example.com", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := store.Account{User: tt.user, Domain: tt.domain, Credentials: []byte("other")}
				if err := s.AccountCreate(t.Context(), &a); !errors.Is(err, tt.want) {
					t.Fatalf("AccountCreate(%s) = %v, want %v", a.Address(), err, tt.want)
				}
			})
		}
		got, err := s.AccountGet(t.Context(), "alice", "example.com")
		if err != nil {
			t.Fatalf("AccountGet: %v", err)
		}
		checkAccount(t, got, alice)
	})

	t.Run("GetNotFound", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		mustAccount(t, s, "alice", "example.com")
		tests := []struct{ name, user, domain string }{
			{"unknown user", "carol", "example.com"},
			{"unknown domain", "alice", "example.net"},
			{"swapped", "example.com", "alice"},
			{"empty", "", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.AccountGet(t.Context(), tt.user, tt.domain); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("AccountGet = %v, want ErrNotFound", err)
				}
			})
		}
	})

	t.Run("DomainExists", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		mustAccount(t, s, "alice", "example.com")
		for domain, want := range map[string]bool{"example.com": true, "example.net": false, "EXAMPLE.COM": false, "": false} {
			if got, err := s.AccountDomainExists(t.Context(), domain); err != nil || got != want {
				t.Errorf("AccountDomainExists(%q) = %v, %v; want %v", domain, got, err, want)
			}
		}
		if err := s.AccountDelete(t.Context(), "alice", "example.com"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.AccountDomainExists(t.Context(), "example.com"); err != nil || got {
			t.Errorf("AccountDomainExists after the last account went = %v, %v; want false", got, err)
		}
	})

	t.Run("SetCredentials", func(t *testing.T) {
		t.Parallel()
		s, clock := setup(t, open)
		want := mustAccount(t, s, "alice", "example.com")
		tests := []struct {
			name        string
			credentials []byte
			webHash     string
		}{
			{"replace both", []byte{9, 0, 9}, "new hash"},
			{"clear web hash", []byte{1}, ""},
			{"empty credentials", []byte{}, "hash"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				clock.Advance(90*time.Second + 250*time.Millisecond)
				err := s.AccountSetCredentials(t.Context(), store.AccountCredentialsParams{
					User: "alice", Domain: "example.com", Credentials: tt.credentials, WebHash: tt.webHash,
				})
				if err != nil {
					t.Fatalf("AccountSetCredentials: %v", err)
				}
				want.Credentials, want.WebHash = tt.credentials, tt.webHash
				want.UpdatedAt = clock.Now().Truncate(time.Microsecond)
				got, err := s.AccountGet(t.Context(), "alice", "example.com")
				if err != nil {
					t.Fatalf("AccountGet: %v", err)
				}
				checkAccount(t, got, want)
			})
		}
		for _, tt := range []struct{ name, user, domain string }{
			{"unknown user", "bob", "example.com"},
			{"unknown domain", "alice", "example.org"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				err := s.AccountSetCredentials(t.Context(), store.AccountCredentialsParams{User: tt.user, Domain: tt.domain, Credentials: []byte{1}})
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("AccountSetCredentials = %v, want ErrNotFound", err)
				}
			})
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		ctx := t.Context()
		alice := mustAccount(t, s, "alice", "example.com")
		bob := mustAccount(t, s, "bob", "example.com")
		put(t, s, alice.ID, "d1", "a1", "a2")
		put(t, s, bob.ID, "d1", "b1")

		if err := s.AccountDelete(ctx, "alice", "example.com"); err != nil {
			t.Fatalf("AccountDelete: %v", err)
		}
		tests := []struct {
			name string
			call func() error
			want error
		}{
			{"get", func() error { _, err := s.AccountGet(ctx, "alice", "example.com"); return err }, store.ErrNotFound},
			{"delete again", func() error { return s.AccountDelete(ctx, "alice", "example.com") }, store.ErrNotFound},
			{"delete unknown", func() error { return s.AccountDelete(ctx, "carol", "example.com") }, store.ErrNotFound},
			{"put to deleted account", func() error {
				_, err := s.JournalPut(ctx, store.JournalPutParams{AccountID: alice.ID, Device: "d1", Items: []store.JournalItem{{MsgID: "a3", Data: "x"}}})
				return err
			}, store.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(); !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
			})
		}
		if rows := listAll(t, s, alice.ID); len(rows) != 0 {
			t.Errorf("journal of deleted account: %v, want none", brief(rows))
		}
		if got := msgIDs(listAll(t, s, bob.ID)); !slices.Equal(got, []string{"b1"}) {
			t.Errorf("journal of other account: %v, want [b1]", got)
		}
		again := mustAccount(t, s, "alice", "example.com")
		if again.ID == alice.ID {
			t.Errorf("recreated account got the deleted account's id %d", again.ID)
		}
		if rows := listAll(t, s, again.ID); len(rows) != 0 {
			t.Errorf("journal of recreated account: %v, want none", brief(rows))
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		got, err := s.AccountList(t.Context())
		if err != nil || len(got) != 0 {
			t.Fatalf("AccountList on an empty store = %v, %v; want none", got, err)
		}
		// Byte order: upper case before lower case, "a.example" before "b.example".
		for _, addr := range [][2]string{
			{"bob", "b.example"}, {"zed", "a.example"}, {"alice", "b.example"},
			{"Alice", "b.example"}, {"carol", "a.example"}, {"alice", "a-b.example"},
		} {
			mustAccount(t, s, addr[0], addr[1])
		}
		got, err = s.AccountList(t.Context())
		if err != nil {
			t.Fatalf("AccountList: %v", err)
		}
		var addrs []string
		for _, a := range got {
			addrs = append(addrs, a.Address())
		}
		want := []string{"alice@a-b.example", "carol@a.example", "zed@a.example", "Alice@b.example", "alice@b.example", "bob@b.example"}
		if !slices.Equal(addrs, want) {
			t.Errorf("AccountList = %v, want %v", addrs, want)
		}
	})

	t.Run("InvalidText", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, open)
		tests := []struct {
			name string
			a    store.Account
		}{
			{"NUL in user", store.Account{User: "al\x00ice", Domain: "example.com"}},
			{"invalid UTF-8 in domain", store.Account{User: "alice", Domain: "example\xff.com"}},
			{"invalid UTF-8 in web hash", store.Account{User: "alice", Domain: "example.com", WebHash: "\xc3"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := tt.a
				if err := s.AccountCreate(t.Context(), &a); err == nil {
					t.Errorf("AccountCreate(%q) succeeded, want an error", a.Address())
				}
			})
		}
		if got, err := s.AccountList(t.Context()); err != nil || len(got) != 0 {
			t.Errorf("AccountList = %v, %v; want none", got, err)
		}
	})
}
