// Package schema holds cairn's SQL migrations, one numbered file per version
// and dialect, embedded in the binary. Both dialects keep the same list of
// numbers; a released file is never edited, a change gets a new number. The
// engines apply the files and record each version in the schema_migrations
// table; Plan decides what is pending and refuses a database that is newer.
package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Dialect names a SQL dialect with its own migration folder.
type Dialect string

// The dialects cairn ships migrations for.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// VersionsTable is the table, identical in both dialects, that records the
// applied versions: version, name and applied_at.
const VersionsTable = "schema_migrations"

// Migrations returns the migrations of dialect d in version order.
func Migrations(d Dialect) ([]Migration, error) {
	entries, err := fs.ReadDir(files, string(d))
	if err != nil {
		return nil, fmt.Errorf("schema: unknown dialect %q: %w", d, err)
	}
	var out []Migration
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("schema: bad migration file name %q", e.Name())
		}
		body, err := files.ReadFile(path.Join(string(d), e.Name()))
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("schema: %s migrations are not numbered 1..n: %d at position %d", d, m.Version, i+1)
		}
	}
	return out, nil
}

// Plan returns the migrations of d that are not in applied. It returns an error
// naming the unknown versions when applied holds a version this binary lacks,
// so that an old binary never runs against a newer schema.
func Plan(d Dialect, applied []int) ([]Migration, error) {
	all, err := Migrations(d)
	if err != nil {
		return nil, err
	}
	var unknown []int
	for _, v := range applied {
		if v > len(all) || v <= 0 {
			unknown = append(unknown, v)
		}
	}
	if len(unknown) > 0 {
		return nil, &TooNewError{Known: len(all), Unknown: unknown}
	}
	var pending []Migration
	for _, m := range all {
		if !slices.Contains(applied, m.Version) {
			pending = append(pending, m)
		}
	}
	return pending, nil
}

// TooNewError reports schema versions in the database that this binary does
// not know.
type TooNewError struct {
	Known   int
	Unknown []int
}

func (e *TooNewError) Error() string {
	return fmt.Sprintf("schema: database has versions %v, this binary knows 1..%d: upgrade cairn", e.Unknown, e.Known)
}
