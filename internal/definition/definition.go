package definition

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits of a definition; see the package comment.
const (
	MaxActivityName = 48
	MaxItemName     = 63
	MaxTextLength   = 65535
	MaxPrecision    = 38
	MaxItems        = 500
	// DefaultPrecision and DefaultScale apply to a decimal without them.
	DefaultPrecision = 18
	DefaultScale     = 4
)

// Type is the type of an item.
type Type string

// The types of items.
const (
	Milestone Type = "milestone"
	Text      Type = "text"
	Integer   Type = "integer"
	Float     Type = "float"
	Decimal   Type = "decimal"
	Boolean   Type = "boolean"
)

var types = []Type{Milestone, Text, Integer, Float, Decimal, Boolean}

// Reserved lists the item names bam's own columns use, in lower case; an
// item may not take one of them in any case.
var Reserved = []string{
	"instance_id", "activity", "state", "begin_time", "end_time", "first_event_at",
	"last_modified", "events", "items", "updated_at", "continuations", "references", "related",
}

// ReservedPrefix starts the names of bam's own tables; an activity name may
// not start with it in any case.
const ReservedPrefix = "bam_"

// File is a parsed and checked definition file.
type File struct {
	Activities []Activity `yaml:"activities" json:"activities"`
}

// Activity is one activity and its items, in the file's order.
type Activity struct {
	Name  string `yaml:"name" json:"name"`
	Items []Item `yaml:"items" json:"items"`
	// Aggregations are summaries the store keeps of the instances.
	Aggregations []Aggregation `yaml:"aggregations,omitempty" json:"aggregations,omitempty"`
	// Alerts are conditions on the instances or the aggregations that
	// notify subscribers when they become true (package alert).
	Alerts []Alert `yaml:"alerts,omitempty" json:"alerts,omitempty"`
	line   int
}

// Item is one milestone or data item.
type Item struct {
	Name      string `yaml:"name" json:"name"`
	Type      Type   `yaml:"type" json:"type"`
	MaxLength int    `yaml:"max_length,omitempty" json:"max_length,omitempty"` // text only
	Precision int    `yaml:"precision,omitempty" json:"precision,omitempty"`   // decimal only
	Scale     *int   `yaml:"scale,omitempty" json:"scale,omitempty"`           // decimal only; nil before defaults
	// Index asks for an index on the item's typed value, so that the
	// activity's views find instances by it quickly. It costs every write
	// of the activity's instances some throughput (see docs/DEFINITIONS.md).
	Index bool `yaml:"index,omitempty" json:"index,omitempty"`
	line  int
}

// Problem is one thing wrong with a definition file.
type Problem struct {
	Line     int    // 0 when not known
	Activity string // empty when the problem is the file's
	Item     string // empty when the problem is the activity's
	Reason   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Activity != "" {
		fmt.Fprintf(&b, "activity %q: ", p.Activity)
	}
	if p.Item != "" {
		fmt.Fprintf(&b, "item %q: ", p.Item)
	}
	b.WriteString(p.Reason)
	return b.String()
}

// maxListed is how many problems Error's message lists; Problems has all.
const maxListed = 50

// Error is every problem Parse found.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	var lines []string
	for i, p := range e.Problems {
		if i == maxListed {
			lines = append(lines, fmt.Sprintf("… and %d more", len(e.Problems)-maxListed))
			break
		}
		lines = append(lines, p.String())
	}
	if len(e.Problems) == 1 {
		return "invalid definition: " + lines[0]
	}
	return fmt.Sprintf("invalid definition (%d problems):\n  %s", len(e.Problems), strings.Join(lines, "\n  "))
}

// Parse reads a definition file, checks it and fills in defaults. Its error
// is an *Error listing every problem, or a YAML syntax error.
func Parse(data []byte) (File, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return File{}, &Error{[]Problem{{Reason: "the file is empty: it needs an activities list"}}}
		}
		return File{}, fmt.Errorf("invalid definition: %w", err)
	}
	var f File
	shape, err := decodeStrict(data, &f)
	if err != nil {
		return File{}, err
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return File{}, &Error{[]Problem{{Line: more.Line, Reason: "more than one YAML document: put every activity in one activities list"}}}
	}
	lines(&doc, &f)
	// Every problem at once: those of the file's shape, and the checks of
	// the activities the shape's problems leave whole (one whose items
	// could not be read would be reported again as having none).
	probs := shape
	for _, p := range f.check() {
		if !spoiled(p, shape, f) {
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
		return File{}, &Error{probs}
	}
	return f, nil
}

// spoiled reports whether a check's problem p is about what a problem of
// the file's shape (one of shape) left partly read: an item with a shape
// problem on its line, or, for a problem of an activity itself, an
// activity with a shape problem anywhere in it.
func spoiled(p Problem, shape []Problem, f File) bool {
	if len(shape) == 0 {
		return false
	}
	if p.Activity == "" && len(f.Activities) == 0 {
		return true // the activities list itself could not be read
	}
	for i, a := range f.Activities {
		if a.Name != p.Activity {
			continue
		}
		end := math.MaxInt
		if i+1 < len(f.Activities) && f.Activities[i+1].line > 0 {
			end = f.Activities[i+1].line
		}
		if p.Item != "" {
			// An item's own problem is spoiled only by a shape problem on
			// its line (an option of it that could not be read).
			for _, it := range a.Items {
				if it.Name == p.Item && slices.ContainsFunc(shape, func(sp Problem) bool { return sp.Line == it.line }) {
					return true
				}
			}
			continue
		}
		for _, sp := range shape {
			if sp.Line == 0 || (sp.Line >= a.line && sp.Line < end) {
				return true
			}
		}
	}
	return false
}

// decodeStrict decodes the first document with unknown fields refused. The
// problems of the file's shape (a value of the wrong kind, an unknown
// field) are returned, said in the file's words; the decoder reads on past
// them, so f holds what could be read. err is a document YAML cannot read.
func decodeStrict(data []byte, f *File) (shape []Problem, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				shape = append(shape, shapeProblem(msg))
			}
			return shape, nil
		}
		return nil, fmt.Errorf("invalid definition: %w", err)
	}
	return nil, nil
}

var (
	yamlLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnmarshal = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `([^`]*)`)? into (.+)$")
	yamlField     = regexp.MustCompile(`^field (\S+) not found in type (.+)$`)
)

// shapeProblem says a decoder's message in the file's words, without Go's
// type names: "line 3: cannot unmarshal !!map into []definition.Item"
// becomes "line 3: expected a list of items, found a mapping".
func shapeProblem(msg string) Problem {
	var p Problem
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch m := yamlUnmarshal.FindStringSubmatch(msg); {
	case m != nil:
		found := yamlKind(m[1])
		if m[2] != "" {
			found += fmt.Sprintf(" (%s)", m[2])
		}
		p.Reason = fmt.Sprintf("expected %s, found %s", goTypeWords(m[3]), found)
	default:
		if m := yamlField.FindStringSubmatch(msg); m != nil {
			p.Reason = fmt.Sprintf("unknown field %q in %s", m[1], goTypeWords(m[2]))
		} else {
			p.Reason = msg
		}
	}
	return p
}

func yamlKind(tag string) string {
	switch tag {
	case "map":
		return "a mapping"
	case "seq":
		return "a list"
	case "str":
		return "text"
	case "int", "float":
		return "a number"
	case "bool":
		return "true or false"
	case "null":
		return "nothing"
	}
	return tag
}

// goTypeWords names a Go type of this package as the file's reader knows it.
func goTypeWords(t string) string {
	if rest, ok := strings.CutPrefix(t, "[]"); ok {
		w := goTypeWords(rest)
		for _, a := range []string{"an ", "a "} {
			w = strings.TrimPrefix(w, a)
		}
		w = strings.Split(w, " (")[0]
		if w == "activity" {
			return "a list of activities"
		}
		return "a list of " + w + "s"
	}
	switch t {
	case "definition.File":
		return "a file with an activities list"
	case "definition.Activity":
		return "an activity (name, items, ...)"
	case "definition.Item":
		return "an item (name, type, ...)"
	case "definition.Aggregation":
		return "an aggregation (name, dimensions, measures, window)"
	case "definition.Dimension":
		return "a dimension (item, bucket, ranges, progress)"
	case "definition.Measure":
		return "a measure (name, function, item, from, to)"
	case "string":
		return "text"
	case "int", "int64", "int32", "uint", "float64":
		return "a number"
	case "bool":
		return "true or false"
	}
	if name, ok := strings.CutPrefix(t, "definition."); ok {
		return "a " + strings.ToLower(name)
	}
	return t
}

// lines records where each activity and item starts, for the problems.
func lines(doc *yaml.Node, f *File) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	acts := mapValue(root, "activities")
	if acts == nil || acts.Kind != yaml.SequenceNode {
		return
	}
	for i, an := range acts.Content {
		if i >= len(f.Activities) {
			return
		}
		f.Activities[i].line = an.Line
		if items := mapValue(an, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for j, in := range items.Content {
				if j < len(f.Activities[i].Items) {
					f.Activities[i].Items[j].line = in.Line
				}
			}
		}
		if aggs := mapValue(an, "aggregations"); aggs != nil && aggs.Kind == yaml.SequenceNode {
			for j, gn := range aggs.Content {
				if j < len(f.Activities[i].Aggregations) {
					f.Activities[i].Aggregations[j].line = gn.Line
				}
			}
		}
		if alerts := mapValue(an, "alerts"); alerts != nil && alerts.Kind == yaml.SequenceNode {
			for j, n := range alerts.Content {
				if j < len(f.Activities[i].Alerts) {
					f.Activities[i].Alerts[j].line = n.Line
				}
			}
		}
	}
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (f *File) check() []Problem {
	var probs []Problem
	if len(f.Activities) == 0 {
		return []Problem{{Reason: "no activities: the file needs an activities list with at least one activity"}}
	}
	seen := map[string]int{}
	for i := range f.Activities {
		a := &f.Activities[i]
		add := func(item string, line int, format string, args ...any) {
			probs = append(probs, Problem{Line: line, Activity: a.Name, Item: item, Reason: fmt.Sprintf(format, args...)})
		}
		if reason := checkName(a.Name, MaxActivityName); reason != "" {
			add("", a.line, "activity name %s", reason)
		} else if strings.HasPrefix(strings.ToLower(a.Name), ReservedPrefix) {
			add("", a.line, "activity names starting with %q are reserved: its views would sit among bam's own tables", ReservedPrefix)
		} else if prev, dup := seen[strings.ToLower(a.Name)]; dup {
			add("", a.line, "defined twice (also on line %d; names are compared without regard to case)", prev)
		} else {
			seen[strings.ToLower(a.Name)] = a.line
		}
		switch {
		case len(a.Items) == 0:
			add("", a.line, "no items: an activity needs at least one milestone or data item")
		case len(a.Items) > MaxItems:
			add("", a.line, "%d items, more than the limit of %d", len(a.Items), MaxItems)
		}
		items := map[string]int{}
		for j := range a.Items {
			it := &a.Items[j]
			if reason := checkName(it.Name, MaxItemName); reason != "" {
				add(it.Name, it.line, "item name %s", reason)
			} else if slices.Contains(Reserved, strings.ToLower(it.Name)) {
				add(it.Name, it.line, "the name is reserved for bam's own columns (reserved: %s)", strings.Join(Reserved, ", "))
			} else if prev, dup := items[strings.ToLower(it.Name)]; dup {
				add(it.Name, it.line, "defined twice in the activity (also on line %d; names are compared without regard to case)", prev)
			} else {
				items[strings.ToLower(it.Name)] = it.line
			}
			for _, reason := range it.checkType() {
				add(it.Name, it.line, "%s", reason)
			}
		}
		a.checkAggregations(add)
		a.checkAlerts(add)
	}
	return probs
}

// checkType checks the type and its options, and fills in the defaults.
func (it *Item) checkType() []string {
	var out []string
	if !slices.Contains(types, it.Type) {
		if it.Type == "" {
			return []string{fmt.Sprintf("no type (one of %s)", typeList())}
		}
		return []string{fmt.Sprintf("unknown type %q (one of %s)", it.Type, typeList())}
	}
	if it.Type != Text && it.MaxLength != 0 {
		out = append(out, fmt.Sprintf("max_length applies to text items only, not %s", it.Type))
	}
	if it.Type != Decimal && (it.Precision != 0 || it.Scale != nil) {
		out = append(out, fmt.Sprintf("precision and scale apply to decimal items only, not %s", it.Type))
	}
	switch it.Type {
	case Text:
		if it.MaxLength < 1 || it.MaxLength > MaxTextLength {
			out = append(out, fmt.Sprintf("text needs max_length between 1 and %d (got %d)", MaxTextLength, it.MaxLength))
		}
	case Decimal:
		if it.Precision == 0 {
			it.Precision = DefaultPrecision
		}
		if it.Scale == nil {
			s := min(DefaultScale, it.Precision)
			it.Scale = &s
		}
		if it.Precision < 1 || it.Precision > MaxPrecision {
			out = append(out, fmt.Sprintf("decimal precision must be between 1 and %d (got %d)", MaxPrecision, it.Precision))
		} else if *it.Scale < 0 || *it.Scale > it.Precision {
			out = append(out, fmt.Sprintf("decimal scale must be between 0 and the precision %d (got %d)", it.Precision, *it.Scale))
		}
	}
	return out
}

func typeList() string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// checkName returns why name cannot be a name, or "".
func checkName(name string, max int) string {
	switch {
	case name == "":
		return "is missing"
	case len(name) > max:
		return fmt.Sprintf("%q is %d bytes, more than the limit of %d", name, len(name), max)
	}
	for i, r := range name {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if i == 0 && !letter {
			return fmt.Sprintf("%q must start with a letter (A-Z, a-z)", name)
		}
		if !letter && !(r >= '0' && r <= '9') && r != '_' {
			return fmt.Sprintf("%q may hold only letters, digits and underscores (found %q)", name, r)
		}
	}
	return ""
}
