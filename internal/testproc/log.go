package testproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// logPoll is how often WaitLine reads the log again: the resolution of a
// wait, not of a measurement (a line carries its own time).
const logPoll = 5 * time.Millisecond

// joinedMsg is what a node logs once it has joined its pool
// (internal/pool).
const joinedMsg = "node joined the pool"

// ErrNoLog is returned by the methods that read a process's log when it
// was started without a LogFile.
var ErrNoLog = errors.New("the process has no log file (Config.LogFile)")

// LogLines reads a log written with --log-format json, one object a line;
// lines that are not JSON objects are skipped.
func LogLines(path string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// Lines reads the process's log (LogLines).
func (p *Proc) Lines() ([]map[string]any, error) {
	if p.log == "" {
		return nil, ErrNoLog
	}
	return LogLines(p.log)
}

// WaitLine waits up to limit for a line of the process's JSON log that
// match accepts, and returns the first. It fails early when the process
// exits without having logged one.
func (p *Proc) WaitLine(limit time.Duration, what string, match func(map[string]any) bool) (map[string]any, error) {
	deadline := time.Now().Add(limit)
	for {
		exited := p.Exited() // before reading: a line logged before the exit is read
		lines, err := p.Lines()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, l := range lines {
			if match(l) {
				return l, nil
			}
		}
		switch {
		case exited:
			return nil, fmt.Errorf("%s exited (%v) before %s; its log ends:\n%s", p.name, p.Err(), what, p.Tail())
		case time.Now().After(deadline):
			return nil, fmt.Errorf("%s: waited %v for %s; its log ends:\n%s", p.name, limit, what, p.Tail())
		}
		time.Sleep(logPoll)
	}
}

// WaitJoined waits up to limit for the node (bam serve --log-format json)
// to log that it joined its pool, and returns its node id and the time of
// that line.
func (p *Proc) WaitJoined(limit time.Duration) (id string, at time.Time, err error) {
	l, err := p.WaitLine(limit, "it to join the pool", func(l map[string]any) bool {
		id, _ := l["node"].(string)
		return l["msg"] == joinedMsg && id != ""
	})
	if err != nil {
		return "", time.Time{}, err
	}
	id, _ = l["node"].(string)
	at, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
	return id, at, nil
}

// tailBytes is how much of a log Tail shows.
const tailBytes = 4000

// Tail returns the end of the process's log, for a message.
func (p *Proc) Tail() string {
	b := readAll(p.log)
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	return string(b)
}

// readAll is the whole of a log, or what can be read of it.
func readAll(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// lineWriter passes what a process writes to a file as it comes, and to
// onLine a whole line at a time. exec.Cmd calls Write from one goroutine.
type lineWriter struct {
	file   io.Writer // may be nil
	onLine func([]byte)
	buf    []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	if w.file != nil {
		if _, err := w.file.Write(b); err != nil {
			return 0, err
		}
	}
	if w.onLine == nil {
		return len(b), nil
	}
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.onLine(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

// flush passes a last line that had no newline.
func (w *lineWriter) flush() {
	if w.onLine != nil && len(w.buf) > 0 {
		w.onLine(w.buf)
		w.buf = nil
	}
}
