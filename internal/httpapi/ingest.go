package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// The body formats of an ingest request.
const (
	formatJSON   = "json"
	formatNDJSON = "ndjson"
)

// IdempotencyHeader is the request header holding an idempotency key;
// ReplayedHeader is set to "true" on a response replayed for one.
const (
	IdempotencyHeader = "Idempotency-Key"
	ReplayedHeader    = "Idempotent-Replayed"
)

// ingestResult is the body of an ingest response (200 and 422).
type ingestResult struct {
	Accepted int         `json:"accepted"`
	Rejected []rejection `json:"rejected"`
}

// rejection says why one event of a batch was left out.
type rejection struct {
	// Index is the event's place in the batch, from 0: in a JSON array its
	// index, in NDJSON its place among the non-blank lines.
	Index int `json:"index"`
	// Line is the event's line in an NDJSON body, from 1.
	Line int `json:"line,omitempty"`
	// Field names the JSON field at fault ("kind", "data.Amount"); absent
	// when the whole event is unreadable.
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
}

// item is one event of a batch, not yet decoded.
type item struct {
	raw  []byte
	line int // NDJSON only
}

// bodyError says why a body cannot be split into events at all (400).
type bodyError struct {
	msg    string
	offset int64
}

// ingest is POST /v1/sources/{source}/events.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	// It takes no parameter: one it would ignore (dry_run=true) must not
	// write the events the client meant only to check.
	if !queryParams(r).ok(w) {
		return
	}
	format, err := bodyFormat(r.Header)
	if err != nil {
		writeError(w, http.StatusUnsupportedMediaType, errorBody{Error: err.Error()})
		return
	}
	key, hasKey := r.Header[http.CanonicalHeaderKey(IdempotencyHeader)]
	if hasKey {
		if err := checkKey(key); err != nil {
			writeError(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
	}
	body, status, ebody := s.readBody(w, r)
	if status != 0 {
		writeError(w, status, ebody)
		return
	}
	var ikey store.IdempotencyKey
	if hasKey {
		hash := sha256.Sum256(body)
		ikey = store.IdempotencyKey{Key: key[0], BodyHash: hash[:], Retention: s.tunables().IdempotencyRetention}
		if s.replayRecorded(w, r, r.PathValue("source"), ikey) {
			return
		}
	}
	src, ok := s.bufferSource(w, r, r.PathValue("source"))
	if !ok {
		return
	}
	items, berr := split(body, format)
	if berr != nil {
		writeError(w, http.StatusBadRequest, errorBody{Error: berr.msg, Offset: &berr.offset})
		return
	}

	events, result, err := s.check(r.Context(), items, time.Now(), src.Partitions)
	if err != nil {
		s.unavailable(w, r, "checking the events against the deployed definitions", err)
		return
	}
	status = http.StatusOK
	if result.Accepted == 0 && len(result.Rejected) > 0 {
		status = http.StatusUnprocessableEntity
	}
	resp, err := json.Marshal(result)
	if err != nil {
		panic(fmt.Sprintf("marshal ingest result: %v", err)) // plain ints and strings
	}
	resp = append(resp, '\n')

	// The store's time starts now, not before a slow upload.
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if !hasKey {
		if _, err := store.AppendRefiled(events, func() error { return s.st.AppendBuffer(ctx, src.Name, events) }); err != nil {
			s.appendFailed(w, r, src.Name, err)
			return
		}
		writeRaw(w, status, resp)
		return
	}
	var replay *store.StoredResponse
	_, err = store.AppendRefiled(events, func() error {
		replay, err = s.st.AppendBufferIdempotent(ctx, src.Name, ikey, events, store.StoredResponse{Status: status, Body: resp})
		return err
	})
	switch {
	case errors.Is(err, store.ErrIdempotencyConflict), err == nil && replay != nil:
		answerRecorded(w, ikey.Key, replay, err)
	case err != nil:
		s.appendFailed(w, r, src.Name, err)
	default:
		writeRaw(w, status, resp)
	}
}

// replayRecorded answers a retry with the response its key recorded, or
// 422 when the key was first used for another source or body, and returns
// true; false when the key has no record yet. It comes before the checks
// of the source: a retry gets what the first request got, even when the
// source was disabled since.
func (s *Server) replayRecorded(w http.ResponseWriter, r *http.Request, source string, key store.IdempotencyKey) bool {
	ctx, cancel := storeContext(r)
	defer cancel()
	recorded, err := s.st.RecordedResponse(ctx, key)
	switch {
	case err != nil:
		s.unavailable(w, r, "read the response recorded for the "+IdempotencyHeader, err)
		return true
	case recorded == nil:
		return false
	}
	answerRecorded(w, key.Key, recorded, recorded.Answers(source, key))
	return true
}

// answerRecorded answers with the response recorded for key, or, when
// err is store.ErrIdempotencyConflict, with 422 saying when and where the
// key was first used.
func answerRecorded(w http.ResponseWriter, key string, recorded *store.StoredResponse, err error) {
	if errors.Is(err, store.ErrIdempotencyConflict) {
		first := ""
		if recorded != nil {
			first = fmt.Sprintf(" at %s (source %s)", recorded.CreatedAt.UTC().Format(time.RFC3339), recorded.Source)
		}
		writeError(w, http.StatusUnprocessableEntity, errorBody{
			Error:          fmt.Sprintf("%s %q was first used%s for another request (another source or body); use a new key for a new batch", IdempotencyHeader, key, first),
			IdempotencyKey: key,
		})
		return
	}
	w.Header().Set(ReplayedHeader, "true")
	writeRaw(w, recorded.Status, recorded.Body)
}

// bufferSource reads the source events are posted to; when it is missing,
// not a buffer or disabled, or the store fails, it answers and returns false.
func (s *Server) bufferSource(w http.ResponseWriter, r *http.Request, name string) (store.Source, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	src, err := s.st.Source(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.noSource(ctx, w, name)
	case err != nil:
		s.unavailable(w, r, "read source "+name, err)
	case src.Kind == store.KindAlerts:
		writeError(w, http.StatusConflict, errorBody{Error: fmt.Sprintf("source %s is bam's own session that evaluates the alerts; it takes no events: post them to a buffer source (see GET /v1/sources)", src.Name)})
	case src.Kind != store.KindBuffer:
		writeError(w, http.StatusConflict, errorBody{Error: fmt.Sprintf("source %s is a %s source: applications write its events to their own outbox table; the API writes to buffer sources only", src.Name, src.Kind)})
	case !src.Enabled:
		writeError(w, http.StatusConflict, errorBody{Error: fmt.Sprintf("source %s is disabled; enable it first (bam source enable %s)", src.Name, src.Name)})
	default:
		return src, true
	}
	return store.Source{}, false
}

// appendFailed answers a failed append: 404 when the source went away
// meanwhile, else 503.
func (s *Server) appendFailed(w http.ResponseWriter, r *http.Request, source string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		ctx, cancel := storeContext(r)
		defer cancel()
		s.noSource(ctx, w, source)
		return
	}
	s.unavailable(w, r, "append to source "+source+" (the events may or may not be written: retry with the same Idempotency-Key to be sure they are written once)", err)
}

// bodyFormat reads the request's Content-Type (and refuses a
// Content-Encoding).
func bodyFormat(h http.Header) (string, error) {
	if enc := h.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return "", fmt.Errorf("Content-Encoding %s is not supported; send the body uncompressed", enc)
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return "", errors.New("Content-Type is missing: send application/json (an array of events or one event) or application/x-ndjson (one event per line)")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("Content-Type %q is unreadable: %v", ct, err)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", fmt.Errorf("charset %s is not supported: send UTF-8", cs)
	}
	switch mt {
	case "application/json":
		return formatJSON, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		return formatNDJSON, nil
	}
	return "", fmt.Errorf("Content-Type %s is not supported: send application/json (an array of events or one event) or application/x-ndjson (one event per line)", mt)
}

// checkKey checks an Idempotency-Key header: one value of 1 to
// store.MaxIdempotencyKeyLen printable ASCII characters.
func checkKey(values []string) error {
	if len(values) != 1 {
		return fmt.Errorf("%s is given %d times; give it once", IdempotencyHeader, len(values))
	}
	k := values[0]
	if k == "" || len(k) > store.MaxIdempotencyKeyLen {
		return fmt.Errorf("%s must be 1 to %d characters, got %d", IdempotencyHeader, store.MaxIdempotencyKeyLen, len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return fmt.Errorf("%s must be printable ASCII; byte %d is 0x%02x", IdempotencyHeader, i, k[i])
		}
	}
	return nil
}

// readBody reads the whole body, up to Config.MaxBody. A non-zero status
// is the error to answer.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, errorBody) {
	limit := s.cfg.MaxBody
	tooLarge := errorBody{Error: fmt.Sprintf("request body is over the limit of %d bytes; send fewer events per request", limit), Limit: limit}
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	case err != nil:
		return nil, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("read request body: %v", err)}
	}
	return body, 0, errorBody{}
}

// split cuts a body into its events' JSON forms, or says why it cannot.
func split(body []byte, format string) ([]item, *bodyError) {
	if format == formatNDJSON {
		return splitLines(body), nil
	}
	start := len(body) - len(bytes.TrimLeft(body, " \t\r\n"))
	if start == len(body) {
		return nil, &bodyError{msg: "empty body: send a JSON array of events, or one event object", offset: int64(start)}
	}
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	switch body[start] {
	case '{':
		return []item{{raw: bytes.TrimSpace(body)}}, nil
	case '[':
		return splitArray(body), nil
	}
	return nil, &bodyError{msg: fmt.Sprintf("body must be a JSON array of events or one event object; it starts with %q", body[start]), offset: int64(start)}
}

// splitLines cuts an NDJSON body into lines, leaving out blank ones.
func splitLines(body []byte) []item {
	var items []item
	for n := 1; len(body) > 0; n++ {
		line, rest, _ := bytes.Cut(body, []byte{'\n'})
		body = rest
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		items = append(items, item{raw: bytes.TrimSuffix(line, []byte{'\r'}), line: n})
	}
	return items
}

// checkJSON reports where a body that should be one JSON value is
// malformed, as the offset (from 0) of the first byte at fault, or the
// body's length when it ends too soon. JSON that breaks an array leaves
// nothing to go on; an element that is JSON but not an event is rejected
// on its own later.
func checkJSON(body []byte) *bodyError {
	var v json.RawMessage
	err := json.Unmarshal(body, &v)
	if err == nil {
		return nil
	}
	// Unmarshal's offsets are exact but it tells a body that ends too soon
	// only in its message; a Decoder tells it with io.ErrUnexpectedEOF.
	if derr := json.NewDecoder(bytes.NewReader(body)).Decode(&v); errors.Is(derr, io.ErrUnexpectedEOF) {
		return &bodyError{msg: fmt.Sprintf("malformed JSON: the body ends at byte %d before its JSON value does", len(body)), offset: int64(len(body))}
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) && syn.Offset > 0 {
		return &bodyError{msg: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset-1, syn), offset: syn.Offset - 1}
	}
	return &bodyError{msg: fmt.Sprintf("malformed JSON: %v", err), offset: 0}
}

// splitArray cuts a JSON array that checkJSON accepted into its elements.
func splitArray(body []byte) []item {
	dec := json.NewDecoder(bytes.NewReader(body))
	var items []item
	if _, err := dec.Token(); err != nil { // '['
		panic(fmt.Sprintf("split a checked JSON array: %v", err))
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			panic(fmt.Sprintf("split a checked JSON array: %v", err))
		}
		items = append(items, item{raw: raw})
	}
	return items
}

// check decodes and validates each item, returning the valid events as
// the buffer takes them and what to answer; an error when a check could
// not be made.
func (s *Server) check(ctx context.Context, items []item, now time.Time, partitions int) ([]store.BufferEvent, ingestResult, error) {
	events := make([]store.BufferEvent, 0, len(items))
	result := ingestResult{Rejected: []rejection{}}
	maxSize := s.tunables().MaxEventSize
	for i, it := range items {
		ev, err := event.Decode(it.raw, now, maxSize)
		if err == nil && s.cfg.Validate != nil {
			if err = s.cfg.Validate(ctx, ev); err != nil && !errors.As(err, new(*event.Error)) {
				return nil, ingestResult{}, err
			}
		}
		if err != nil {
			rej := rejection{Index: i, Line: it.line, Error: err.Error()}
			var evErr *event.Error
			if errors.As(err, &evErr) {
				rej.Field, rej.Error = evErr.Field, evErr.Reason
			}
			result.Rejected = append(result.Rejected, rej)
			continue
		}
		events = append(events, store.BufferEvent{
			Partition: event.Partition(ev.Segment(), partitions),
			Payload:   event.Encode(ev),
		})
	}
	result.Accepted = len(events)
	return events, result, nil
}
