package replication

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cairn-chat/cairn/store"
)

// params are the request parameters, merged as PHP's $_REQUEST merges them:
// query string first, then the form body, a later value replacing an earlier.
type params map[string]string

// maxMultipartParts bounds the parts of a multipart form body.
const maxMultipartParts = 64

// errBadForm reports a form body that cannot be read.
var errBadForm = errors.New("replication: malformed form body")

// parseParams merges rawQuery and the form body. A body with no Content-Type,
// or any type but multipart/form-data, is read as application/x-www-form-urlencoded,
// as PHP does for Blink's POSTs.
func parseParams(rawQuery, contentType string, body []byte) (params, error) {
	p := make(params)
	addURLEncoded(p, rawQuery)
	mediaType, mparams, _ := mime.ParseMediaType(contentType)
	if mediaType != "multipart/form-data" {
		addURLEncoded(p, string(body))
		return p, nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), mparams["boundary"])
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		// Only a bare io.EOF is the closing boundary: NextPart wraps io.EOF
		// when the body ends before any boundary, which is malformed.
		if err == io.EOF {
			return p, nil
		}
		if err != nil || i == maxMultipartParts {
			return nil, errBadForm
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(part); err != nil {
			return nil, errBadForm
		}
		if name := part.FormName(); name != "" {
			p[name] = b.String()
		}
	}
}

// addURLEncoded adds the name=value pairs of s to p. It never fails: like
// PHP, it takes Blink's unencoded query strings (urn:uuid:… with bare colons)
// and keeps a malformed %-escape as it stands.
func addURLEncoded(p params, s string) {
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		if name = urlDecode(name); name != "" {
			p[name] = urlDecode(value)
		}
	}
}

// urlDecode decodes '+' and valid %XX escapes and leaves anything else as it is.
func urlDecode(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// intval reads a leading decimal integer as PHP's intval does: optional
// spaces and sign, then digits, saturating on overflow; anything else gives 0.
func intval(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	end := 0
	if end < len(s) && (s[end] == '+' || s[end] == '-') {
		end++
	}
	for end < len(s) && '0' <= s[end] && s[end] <= '9' {
		end++
	}
	n, err := strconv.ParseInt(s[:end], 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return n // ParseInt returns the saturated value with ErrRange
	}
	if err != nil {
		return 0
	}
	return n
}

// truthy reports PHP truthiness of a request parameter: set, not "" and not "0".
func truthy(s string) bool { return s != "" && s != "0" }

// Limits on the identifiers a put carries.
const (
	maxDeviceLen = 256
	maxMsgIDLen  = 1024
)

// inputError is a bad request, answered with success:false and its message.
// The messages of cdrtool are kept where cdrtool had one.
type inputError string

func (e inputError) Error() string { return string(e) }

// The error_message strings. The first four are cdrtool's.
const (
	errMissingUUID   inputError = "Missing uuid"
	errMissingData   inputError = "Missing data"
	errJSONDecode    inputError = "Json decode error"
	errNoEntries     inputError = "No journal entries provided"
	errUnknownAction inputError = "Unknown action"
	errBadUUID       inputError = "Invalid uuid"
	errBadEntry      inputError = "Invalid journal entry"
	errEntryTooLarge inputError = "Journal entry too large"
	errBadFormBody   inputError = "Malformed form body"
)

// putRequest is a parsed put_journal_entries.
type putRequest struct {
	device string
	ids    []string // the client's id of each item, echoed back
	items  []store.JournalItem
}

// parsePut reads uuid and data. data is a JSON object of entries keyed by
// message id, kept in input order, or a JSON array of entries; an entry is
// {"data": <blob>, "id": <msgid>}. Members that are not objects, and entries
// whose data is missing, null or empty, are left out, as cdrtool does; an
// entry whose data or id is another kind of value is an error.
func parsePut(p params, maxEntry int) (putRequest, error) {
	var req putRequest
	req.device = p["uuid"]
	switch {
	case req.device == "":
		return req, errMissingUUID
	case len(req.device) > maxDeviceLen || !storable(req.device):
		return req, errBadUUID
	case p["data"] == "":
		return req, errMissingData
	}
	r := &jsonReader{s: p["data"]}
	open := r.peek()
	if open != '{' && open != '[' {
		return req, errJSONDecode
	}
	members := 0
	err := r.each(open, 1, func(string) error {
		members++
		if r.peek() != '{' {
			return r.skipValue(1)
		}
		data, id, err := readEntry(r)
		switch {
		case err != nil:
			return err
		case data == "":
			return nil
		case len(data) > maxEntry:
			return errEntryTooLarge
		case len(id) > maxMsgIDLen || !storable(data) || !storable(id):
			return errBadEntry
		}
		req.ids = append(req.ids, id)
		req.items = append(req.items, store.JournalItem{MsgID: id, Data: data})
		return nil
	})
	if err == nil {
		err = r.end()
	}
	var bad inputError
	switch {
	case errors.As(err, &bad):
		return req, bad
	case err != nil, open == '[' && members == 0: // cdrtool: json_decode("[]") is falsy
		return req, errJSONDecode
	}
	return req, nil
}

// readEntry reads one entry object and returns its data and id; null or
// missing ones are "". A later key replaces an earlier one.
func readEntry(r *jsonReader) (data, id string, err error) {
	err = r.each('{', 2, func(key string) error {
		var dst *string
		switch key {
		case "data":
			dst = &data
		case "id":
			dst = &id
		default:
			return r.skipValue(2)
		}
		switch r.peek() {
		case '"':
			var err error
			*dst, err = r.str()
			return err
		case 'n':
			*dst = ""
			return r.literal("null")
		default:
			if err := r.skipValue(2); err != nil {
				return err
			}
			return errBadEntry
		}
	})
	return data, id, err
}

// storable reports whether s can be kept as text by both engines: valid
// UTF-8 without NUL (PostgreSQL's text type takes nothing else).
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// getRequest is a parsed get_journal_entries.
type getRequest struct {
	exceptDevice string
	afterID      int64
	afterTime    int64
	limit        int
	summary      bool
}

// maxRows caps the rows of one get, and of its summary.
const maxRows = 5000

func parseGet(p params) getRequest {
	req := getRequest{
		exceptDevice: p["except_uuid"],
		afterID:      max(intval(p["after_id"]), 0),
		afterTime:    max(intval(p["after_timestamp"]), 0),
		limit:        maxRows,
		summary:      truthy(p["summary"]),
	}
	if n := intval(p["limit"]); n > 0 && n < maxRows {
		req.limit = int(n)
	}
	return req
}

// parseDelete reads the ids to delete: data, a JSON array (or object) of ids
// as strings or numbers, or else a single journal_id. Ids that are not
// positive integers are ignored: they cannot name a row.
func parseDelete(p params) ([]int64, error) {
	if p["data"] == "" {
		if p["journal_id"] == "" {
			return nil, errMissingData
		}
		return positiveIDs([]string{p["journal_id"]}), nil
	}
	r := &jsonReader{s: p["data"]}
	open := r.peek()
	if open != '{' && open != '[' {
		return nil, errNoEntries
	}
	var ids []string
	err := r.each(open, 1, func(string) error {
		if r.peek() == '"' {
			s, err := r.str()
			ids = append(ids, s)
			return err
		}
		r.ws()
		start := r.i
		err := r.skipValue(1)
		ids = append(ids, r.s[start:r.i]) // a number, or something that will not parse
		return err
	})
	if err != nil || r.end() != nil || len(ids) == 0 {
		return nil, errNoEntries
	}
	return positiveIDs(ids), nil
}

func positiveIDs(ss []string) []int64 {
	var out []int64
	for _, s := range ss {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}
