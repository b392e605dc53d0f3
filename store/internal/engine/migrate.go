package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cairn-chat/cairn/schema"
	"github.com/cairn-chat/cairn/store"
)

// Plan returns the migrations of d that applied lacks, or an error wrapping
// store.ErrSchemaTooNew when applied holds versions this binary does not know.
func Plan(d schema.Dialect, applied map[int]time.Time) ([]schema.Migration, error) {
	pending, err := schema.Plan(d, slices.Collect(maps.Keys(applied)))
	if _, ok := errors.AsType[*schema.TooNewError](err); ok {
		return nil, fmt.Errorf("%w: %w", store.ErrSchemaTooNew, err)
	}
	return pending, err
}

// Status lists the migrations of d, with the time each was applied (zero
// when pending), refusing a database newer than this binary as Plan does.
func Status(d schema.Dialect, applied map[int]time.Time) ([]store.Migration, error) {
	if _, err := Plan(d, applied); err != nil {
		return nil, err
	}
	known, err := schema.Migrations(d)
	if err != nil {
		return nil, err
	}
	out := make([]store.Migration, len(known))
	for i, m := range known {
		out[i] = store.Migration{Version: m.Version, Name: m.Name, AppliedAt: applied[m.Version]}
	}
	return out, nil
}

// MustMigrate decides what Open does with a schema in the given status: it
// reports whether to apply the pending migrations (when migrate is set), or
// refuses with store.ErrSchemaOld when some are pending and neither migrate
// nor inspect is set.
func MustMigrate(status []store.Migration, migrate, inspect bool) (bool, error) {
	pending := 0
	for _, m := range status {
		if m.AppliedAt.IsZero() {
			pending++
		}
	}
	switch {
	case pending == 0 || !migrate && inspect:
		return false, nil
	case !migrate:
		return false, fmt.Errorf("migrations pending: %d: %w", pending, store.ErrSchemaOld)
	}
	return true, nil
}
