package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The command blocks of the docs, as TestDocs reads them.
//
// A command block is a fence labelled sh, bash, shell or console. In sh,
// bash and shell blocks every line is a command (or a comment); a comment
// that follows a command and starts with { or [ is the output the doc
// claims for it, running on over the comment lines after it until it is
// complete JSON. In console blocks, lines that start with "$ " are
// commands and the lines after them their output. Output that is not JSON
// is not compared (see checkOutput).
//
// A marker, an HTML comment just before a block (blank lines between are
// allowed), says how the block runs; the reader of the doc source sees it:
//
//	<!-- docs-test: skip (why) -->     not run: the reason is required
//	<!-- docs-test: syntax (why) -->   bam's commands are checked (the
//	                                   subcommands and flags exist), not run
//	<!-- docs-test: background -->     the block runs a node (bam serve)
//	                                   while the file's later blocks run
//	<!-- docs-test: expect A B -->     the block's output holds A and B
//	<!-- docs-test: setup
//	commands the block needs first, run before it
//	-->
//
// A fence without a label whose first line is a command (bam, ./bam, go,
// curl, $) is an error: label it sh to have it run, or text.

// docBlock is one command block of a doc and its markers.
type docBlock struct {
	line       int // of the opening fence, from 1
	steps      []docStep
	setup      []docStep
	skip       string // the reason of a skip marker
	syntax     string // the reason of a syntax marker
	background bool
	expect     []string
}

// docStep is one command as bash runs it (it may span lines: a trailing
// backslash, an open quote) and the output the doc shows for it.
type docStep struct {
	line   int // of its first line, in the file
	text   string
	output string // empty when the doc shows none
}

func (b docBlock) runs() bool { return b.skip == "" }

var (
	fenceRE  = regexp.MustCompile("^(\\s*)(```+)\\s*([A-Za-z0-9_-]*)\\s*$")
	markerRE = regexp.MustCompile(`^\s*<!--\s*docs-test:\s*(.*)$`)
	// A line that reads as a command, to find command blocks left unlabelled.
	commandLineRE = regexp.MustCompile(`^\s*(\$ |bam |\./bam |go |curl )`)
)

var commandLangs = []string{"sh", "bash", "shell", "console"}

// parseDoc returns the command blocks of a markdown file, each with its
// markers. Problems with markers or fences are errors: a marker that does
// not apply to a block, a skip without a reason, an unlabelled command block.
func parseDoc(name, text string) ([]docBlock, error) {
	lines := strings.Split(text, "\n")
	var blocks []docBlock
	var errs []error
	var pending docBlock
	pendingLine := 0 // line of the first marker waiting for its block, 0 if none
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := markerRE.FindStringSubmatch(line); m != nil {
			body, end, ok := markerBody(lines, i, m[1])
			if !ok {
				errs = append(errs, fmt.Errorf("%s:%d: docs-test marker without its closing -->", name, i+1))
				break
			}
			if err := pending.addMarker(body, i+1); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", name, i+1, err))
			}
			if pendingLine == 0 {
				pendingLine = i + 1
			}
			i = end
			continue
		}
		fence := fenceRE.FindStringSubmatch(line)
		if fence == nil {
			if strings.TrimSpace(line) != "" && pendingLine != 0 {
				errs = append(errs, fmt.Errorf("%s:%d: docs-test marker not followed by a command block", name, pendingLine))
				pending, pendingLine = docBlock{}, 0
			}
			continue
		}
		end := closingFence(lines, i, fence[1], fence[2])
		body := lines[i+1 : end]
		lang := fence[3]
		switch {
		case slices.Contains(commandLangs, lang):
			b := pending
			b.line = i + 1
			var err error
			if b.steps, err = splitSteps(body, i+2, lang == "console"); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", name, i+1, err))
			}
			if b.background && b.skip != "" {
				errs = append(errs, fmt.Errorf("%s:%d: a block is either skipped or run in the background", name, i+1))
			}
			blocks = append(blocks, b)
		case pendingLine != 0:
			errs = append(errs, fmt.Errorf("%s:%d: docs-test marker before a %q block, which is not run", name, pendingLine, lang))
		case lang == "" && len(body) > 0 && commandLineRE.MatchString(body[0]):
			errs = append(errs, fmt.Errorf("%s:%d: a block of commands without a label: write ```sh to have it run (or ```text if it is not commands)", name, i+1))
		}
		pending, pendingLine = docBlock{}, 0
		i = end
	}
	if pendingLine != 0 {
		errs = append(errs, fmt.Errorf("%s:%d: docs-test marker not followed by a command block", name, pendingLine))
	}
	return blocks, errors.Join(errs...)
}

// markerBody returns the text of a marker that starts on line i with first
// (what follows "docs-test:"), and the line it ends on.
func markerBody(lines []string, i int, first string) (string, int, bool) {
	body := []string{first}
	for j := i; j < len(lines); j++ {
		if j > i {
			body = append(body, lines[j])
		}
		if k := strings.Index(body[len(body)-1], "-->"); k >= 0 {
			body[len(body)-1] = body[len(body)-1][:k]
			return strings.Join(body, "\n"), j, true
		}
	}
	return "", 0, false
}

// closingFence returns the line that closes the fence opened on line i (or
// the last line when it is never closed).
func closingFence(lines []string, i int, indent, ticks string) int {
	for j := i + 1; j < len(lines); j++ {
		if strings.TrimSpace(lines[j]) == ticks && strings.HasPrefix(lines[j], indent) {
			return j
		}
	}
	return len(lines)
}

// reasonRE is a marker's reason: text in parentheses.
var reasonRE = regexp.MustCompile(`(?s)^\((.+)\)$`)

// addMarker reads the body of a marker (what follows "docs-test:") that
// starts on line line of the file.
func (b *docBlock) addMarker(body string, line int) error {
	body = strings.TrimSpace(body)
	word, rest := body, ""
	if i := strings.IndexAny(body, " \t\n"); i >= 0 {
		word, rest = body[:i], body[i:]
	}
	switch word {
	case "skip", "syntax":
		m := reasonRE.FindStringSubmatch(strings.TrimSpace(rest))
		if m == nil {
			return fmt.Errorf("docs-test: %s needs its reason in parentheses: <!-- docs-test: %s (why) -->", word, word)
		}
		if word == "skip" {
			b.skip = m[1]
		} else {
			b.syntax = m[1]
		}
	case "background":
		b.background = true
	case "expect":
		b.expect = strings.Fields(rest)
	case "setup":
		steps, err := splitSteps(strings.Split(strings.TrimPrefix(rest, "\n"), "\n"), line+1, false)
		if err != nil {
			return fmt.Errorf("docs-test: setup: %w", err)
		}
		b.setup = append(b.setup, steps...)
	default:
		return fmt.Errorf("docs-test: unknown marker %q (skip, syntax, background, expect, setup)", word)
	}
	return nil
}

// splitSteps cuts the lines of a block (the first is line first of the
// file) into the commands bash runs and the outputs the doc shows.
func splitSteps(lines []string, first int, console bool) ([]docStep, error) {
	var steps []docStep
	var sc shellScanner
	var cur []string
	// output: the comment lines read now are the last step's output (it
	// ended on the line before, or its output goes on).
	output := false
	for k, line := range lines {
		if len(cur) == 0 {
			trimmed := strings.TrimSpace(line)
			var isCmd bool
			if console {
				line, isCmd = strings.CutPrefix(trimmed, "$ ")
				if !isCmd && len(steps) > 0 && trimmed != "" {
					steps[len(steps)-1].output += trimmed + "\n"
				}
			} else if comment, ok := strings.CutPrefix(trimmed, "#"); ok {
				comment = strings.TrimPrefix(comment, " ")
				last := len(steps) - 1
				switch {
				case output && steps[last].output == "" && (strings.HasPrefix(comment, "{") || strings.HasPrefix(comment, "[")),
					output && steps[last].output != "" && !json.Valid([]byte(steps[last].output)):
					steps[last].output += comment + "\n"
				default:
					output = false
				}
			} else {
				isCmd = trimmed != ""
			}
			if !isCmd {
				output = output && !console && trimmed != ""
				continue
			}
		}
		cur = append(cur, line)
		if sc.scan(line) {
			continue // the command goes on over the next line
		}
		steps = append(steps, docStep{line: first + k - len(cur) + 1, text: strings.Join(cur, "\n")})
		cur, output = nil, true
	}
	if len(cur) > 0 {
		return steps, fmt.Errorf("the command at line %d is never finished (an open quote or a trailing backslash)", first+len(lines)-len(cur))
	}
	return steps, nil
}

// shellScanner follows bash's quoting over the lines of a command, enough to
// tell where the command ends: not inside quotes, not after a backslash.
type shellScanner struct {
	single, double bool
}

// scan reads one line and says whether the command goes on after it.
func (s *shellScanner) scan(line string) bool {
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case s.single:
			s.single = c != '\''
		case c == '\\':
			if i == len(line)-1 {
				return true // a line continued
			}
			i++
		case s.double:
			s.double = c != '"'
		case c == '\'':
			s.single = true
		case c == '"':
			s.double = true
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return false // a comment to the end of the line
		}
	}
	return s.single || s.double
}

// checkOutput compares what a command printed with what the doc shows. JSON
// is compared by value: every field the doc shows must be there with that
// value (a field it leaves out may be there), arrays have the same length,
// and any time (RFC 3339) matches any time. Output the doc shows with an
// ellipsis ([...]) only has to be JSON of the same kind. Text that is not
// JSON is not compared.
func checkOutput(doc, got string) error {
	doc, got = strings.TrimSpace(doc), strings.TrimSpace(got)
	if !strings.HasPrefix(doc, "{") && !strings.HasPrefix(doc, "[") {
		return nil
	}
	if !json.Valid([]byte(got)) || got[0] != doc[0] {
		return fmt.Errorf("the doc shows JSON %s…, the command printed %q", doc[:1], got)
	}
	var want, have any
	if err := json.Unmarshal([]byte(doc), &want); err != nil {
		return nil // elided with "..."
	}
	_ = json.Unmarshal([]byte(got), &have)
	if path, ok := matchJSON("", want, have); !ok {
		return fmt.Errorf("the doc shows %s, the command printed %s (they differ at %s)", doc, got, path)
	}
	return nil
}

// matchJSON says whether have matches want (checkOutput's rules), and where
// it does not.
func matchJSON(path string, want, have any) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range w {
			if p, ok := matchJSON(path+"."+k, v, h[k]); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := matchJSON(fmt.Sprintf("%s[%d]", path, i), w[i], h[i]); !ok {
				return p, false
			}
		}
		return "", true
	case string:
		h, ok := have.(string)
		if ok && (h == w || isTime(w) && isTime(h)) {
			return "", true
		}
		return path, false
	default:
		return path, want == have
	}
}

func isTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}
