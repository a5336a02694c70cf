package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	beginMarker = "<!-- bench-report:begin -->"
	endMarker   = "<!-- bench-report:end -->"
)

// replaceBetweenMarkers returns doc with the lines between its begin and
// end marker lines replaced by body; the marker lines and everything
// outside them are kept byte for byte. file names doc in errors. It
// refuses a doc without exactly one of each marker, the begin first.
func replaceBetweenMarkers(doc []byte, body, file string) ([]byte, error) {
	var begins, ends []int // for begin: the offset after its line; for end: the offset of its line
	for off := 0; off < len(doc); {
		next := len(doc)
		if i := bytes.IndexByte(doc[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		switch strings.TrimSpace(string(doc[off:next])) {
		case beginMarker:
			begins = append(begins, next)
		case endMarker:
			ends = append(ends, off)
		}
		off = next
	}
	switch {
	case len(begins) == 0 && len(ends) == 0:
		return nil, fmt.Errorf("%s has no %s and %s lines: add them, each on a line of its own, where the generated section goes (the file was not changed)", file, beginMarker, endMarker)
	case len(begins) != 1 || len(ends) != 1:
		return nil, fmt.Errorf("%s has %d %s lines and %d %s lines; it must have exactly one of each (the file was not changed)", file, len(begins), beginMarker, len(ends), endMarker)
	case ends[0] < begins[0]:
		return nil, fmt.Errorf("%s has its %s line before its %s line (the file was not changed)", file, endMarker, beginMarker)
	}
	nl := "\n"
	if bytes.HasSuffix(doc[:begins[0]], []byte("\r\n")) {
		nl = "\r\n"
	}
	body = strings.TrimRight(body, "\n")
	var out bytes.Buffer
	out.Write(doc[:begins[0]])
	out.WriteString(nl + strings.ReplaceAll(body, "\n", nl) + nl + nl)
	out.Write(doc[ends[0]:])
	return out.Bytes(), nil
}

// checkMarkers says, before a long run, whether file could be written.
func checkMarkers(file string) error {
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	_, err = replaceBetweenMarkers(doc, "", file)
	return err
}

// writeSection puts body between the markers of file: the file is read
// now (whatever others changed in it meanwhile is kept) and replaced
// atomically.
func writeSection(file, body string) error {
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := replaceBetweenMarkers(doc, body, file)
	if err != nil {
		return err
	}
	if bytes.Equal(out, doc) {
		return nil
	}
	return writeAtomic(file, out)
}

// writeAtomic replaces file with data through a temporary file in the
// same directory and a rename, keeping the file's permissions.
func writeAtomic(file string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(file); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
