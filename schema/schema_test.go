package schema

import (
	"errors"
	"slices"
	"testing"
)

func TestDialectsKeepTheSameNumbers(t *testing.T) {
	t.Parallel()
	lite, err := Migrations(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := Migrations(Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Version != i+1 || pg[i].Version != i+1 || lite[i].Name != pg[i].Name {
			t.Errorf("migration %d: sqlite %d %q, postgres %d %q", i+1, lite[i].Version, lite[i].Name, pg[i].Version, pg[i].Name)
		}
		if lite[i].SQL == "" || pg[i].SQL == "" {
			t.Errorf("migration %d is empty", i+1)
		}
	}
	if _, err := Migrations("oracle"); err == nil {
		t.Error("Migrations of an unknown dialect succeeded")
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	all, _ := Migrations(SQLite)
	n := len(all)
	pending, err := Plan(SQLite, nil)
	if err != nil || len(pending) != n {
		t.Fatalf("Plan(nothing applied) = %d pending, %v; want %d", len(pending), err, n)
	}
	pending, err = Plan(SQLite, []int{1})
	if err != nil || slices.ContainsFunc(pending, func(m Migration) bool { return m.Version == 1 }) {
		t.Fatalf("Plan(1 applied) = %v, %v", pending, err)
	}
	_, err = Plan(SQLite, []int{1, n + 1, 999})
	var tooNew *TooNewError
	if !errors.As(err, &tooNew) || !slices.Equal(tooNew.Unknown, []int{n + 1, 999}) || tooNew.Known != n {
		t.Fatalf("Plan(newer versions) = %v, want a TooNewError naming %d and 999", err, n+1)
	}
}
