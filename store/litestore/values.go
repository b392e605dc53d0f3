package litestore

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// checkText returns an error unless s is UTF-8 without NUL bytes. PostgreSQL
// refuses anything else in TEXT columns; litestore refuses it too, so that
// both engines take the same input.
func checkText(field, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s is not UTF-8 text without NUL bytes", field)
	}
	return nil
}

// ceilUnix returns the first whole Unix second not before t. Rows carry
// whole seconds, so a row is not older than t exactly when its second is at
// least ceilUnix(t).
func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// orEmpty returns b, or an empty slice for nil, which the driver would store as NULL.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
