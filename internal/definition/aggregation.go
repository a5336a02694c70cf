package definition

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bam-dev/bam/internal/suggest"
)

// Limits of an aggregation; see the package comment.
const (
	MaxAggregations = 32
	MaxDimensions   = 8
	MaxMeasures     = 16
	MaxRanges       = 20
	// MaxViewName is PostgreSQL's limit on an identifier, which an
	// aggregation's view name must fit.
	MaxViewName = 63
)

// Aggregation is a named summary of an activity's instances, kept by the
// store as it applies events.
type Aggregation struct {
	Name       string      `yaml:"name" json:"name"`
	Dimensions []Dimension `yaml:"dimensions,omitempty" json:"dimensions,omitempty"`
	Measures   []Measure   `yaml:"measures,omitempty" json:"measures,omitempty"`
	// Window, when set, counts completed instances only while their end
	// time is within it ("24h", "7d"); see WindowDuration.
	Window string `yaml:"window,omitempty" json:"window,omitempty"`
	line   int
}

// Bucket truncates a time to a cell of an aggregation's time dimension.
type Bucket string

// The buckets, in UTC; a week starts on Monday.
const (
	Minute Bucket = "minute"
	Hour   Bucket = "hour"
	Day    Bucket = "day"
	Week   Bucket = "week"
	Month  Bucket = "month"
)

var buckets = []Bucket{Minute, Hour, Day, Week, Month}

// Built-in times an aggregation may group by, besides milestones.
const (
	BeginTime = "begin_time"
	EndTime   = "end_time"
)

// Dimension is one way an aggregation splits instances into cells: exactly
// one of Item (with Bucket for a time, Ranges for a number, or neither)
// and Progress.
type Dimension struct {
	Name     string    `yaml:"name,omitempty" json:"name,omitempty"`
	Item     string    `yaml:"item,omitempty" json:"item,omitempty"`
	Bucket   Bucket    `yaml:"bucket,omitempty" json:"bucket,omitempty"`
	Ranges   []float64 `yaml:"ranges,omitempty" json:"ranges,omitempty"`
	Progress []string  `yaml:"progress,omitempty" json:"progress,omitempty"`
}

// Function is what a measure computes over a cell's instances.
type Function string

// The measure functions.
const (
	Count Function = "count"
	Sum   Function = "sum"
	Avg   Function = "avg"
	Min   Function = "min"
	Max   Function = "max"
)

var functions = []Function{Count, Sum, Avg, Min, Max}

// Measure is one value an aggregation computes per cell: Function of Item,
// of the duration in seconds From one milestone To another, or (Count
// alone) of the instances.
type Measure struct {
	Name     string   `yaml:"name" json:"name"`
	Function Function `yaml:"function" json:"function"`
	Item     string   `yaml:"item,omitempty" json:"item,omitempty"`
	From     string   `yaml:"from,omitempty" json:"from,omitempty"`
	To       string   `yaml:"to,omitempty" json:"to,omitempty"`
}

// Duration reports whether the measure is of the time between two
// milestones.
func (m Measure) Duration() bool { return m.From != "" || m.To != "" }

// ViewName is the name of an aggregation's view: "<activity>_<aggregation>"
// in lower case.
func ViewName(activity, aggregation string) string {
	return strings.ToLower(activity) + "_" + strings.ToLower(aggregation)
}

// ViewSuffixes are the suffixes of an activity's own views, which an
// aggregation may not take as its name.
var ViewSuffixes = []string{"active", "completed", "all", "archive"}

// AggregationColumns are the columns every aggregation view has besides
// its dimensions and measures, which they may not be named after.
var AggregationColumns = []string{"state", "instances"}

// Column is the name of a dimension's column in the aggregation's view.
func (d Dimension) Column() string {
	switch {
	case d.Name != "":
		return strings.ToLower(d.Name)
	case len(d.Progress) > 0:
		return "progress"
	case d.Bucket != "":
		return strings.ToLower(d.Item) + "_" + string(d.Bucket)
	}
	return strings.ToLower(d.Item)
}

// WindowDuration is the aggregation's window, 0 for none. Parse has
// checked it.
func (g Aggregation) WindowDuration() time.Duration {
	d, _ := ParseSpan(g.Window)
	return d
}

// ParseSpan reads a duration as time.ParseDuration does, and also whole
// days and weeks ("7d", "2w"). "" is 0.
func ParseSpan(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration (such as 90m, 24h, 7d, 2w)", s)
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (such as 90m, 24h, 7d, 2w)", s)
	}
	return d, nil
}

// WindowBucket is the granularity with which a window of d is kept:
// completed instances leave the aggregation a bucket at a time.
func WindowBucket(d time.Duration) Bucket {
	switch {
	case d <= 2*time.Hour:
		return Minute
	case d <= 7*24*time.Hour:
		return Hour
	}
	return Day
}

// checkAggregations checks a's aggregations against its items.
func (a *Activity) checkAggregations(add func(item string, line int, format string, args ...any)) {
	if len(a.Aggregations) > MaxAggregations {
		add("", a.line, "%d aggregations, more than the limit of %d", len(a.Aggregations), MaxAggregations)
	}
	names := map[string]int{}
	for i := range a.Aggregations {
		g := &a.Aggregations[i]
		problem := func(format string, args ...any) {
			add("", g.line, "aggregation %q: %s", g.Name, fmt.Sprintf(format, args...))
		}
		view := ViewName(a.Name, g.Name)
		switch reason := checkName(g.Name, MaxItemName); {
		case reason != "":
			problem("name %s", reason)
		case slices.Contains(ViewSuffixes, strings.ToLower(g.Name)):
			problem("the name is taken by the activity's own views (%s)", strings.Join(ViewSuffixes, ", "))
		case len(view) > MaxViewName:
			problem("its view %q would be %d bytes, more than PostgreSQL's %d: shorten the aggregation's name", view, len(view), MaxViewName)
		default:
			if prev, dup := names[strings.ToLower(g.Name)]; dup {
				problem("defined twice in the activity (also on line %d; names are compared without regard to case)", prev)
			}
			names[strings.ToLower(g.Name)] = g.line
		}
		if len(g.Dimensions) > MaxDimensions {
			problem("%d dimensions, more than the limit of %d", len(g.Dimensions), MaxDimensions)
		}
		if len(g.Measures) > MaxMeasures {
			problem("%d measures, more than the limit of %d", len(g.Measures), MaxMeasures)
		}
		if g.Window != "" {
			if d, err := ParseSpan(g.Window); err != nil {
				problem("window: %v", err)
			} else if d < time.Minute {
				problem("window %s is shorter than a minute", g.Window)
			}
		}
		columns := map[string]string{}
		for _, c := range AggregationColumns {
			columns[c] = "bam's own column"
		}
		column := func(name, what string) {
			if reason := checkName(name, MaxItemName); reason != "" {
				problem("%s: column name %s", what, reason)
				return
			}
			key := strings.ToLower(name)
			if prev, dup := columns[key]; dup {
				problem("%s: its column %q is also %s (name it with name:)", what, key, prev)
				return
			}
			columns[key] = what
		}
		for j, d := range g.Dimensions {
			what := fmt.Sprintf("dimension %d", j+1)
			for _, reason := range a.checkDimension(d) {
				problem("%s: %s", what, reason)
			}
			column(d.Column(), what)
		}
		for j, m := range g.Measures {
			what := fmt.Sprintf("measure %d (%s)", j+1, m.Name)
			if m.Name == "" {
				problem("measure %d: no name", j+1)
				continue
			}
			for _, reason := range a.checkMeasure(m) {
				problem("%s: %s", what, reason)
			}
			column(m.Name, what)
		}
	}
}

// dimensionItem returns the item a dimension or measure names: one of a's
// items, or begin_time and end_time as milestones.
func (a *Activity) aggregatedItem(name string) (Item, bool) {
	if name == BeginTime || name == EndTime {
		return Item{Name: name, Type: Milestone}, true
	}
	return a.item(name)
}

// noItem says that a names no item called name, with the closest one.
func (a *Activity) noItem(name string) string {
	return fmt.Sprintf("no item %q in the activity%s", name, suggest.DidYouMean(name, a.itemNames()))
}

func (a *Activity) checkDimension(d Dimension) []string {
	if len(d.Progress) > 0 {
		if d.Item != "" || d.Bucket != "" || len(d.Ranges) > 0 {
			return []string{"a progress dimension has no item, bucket or ranges"}
		}
		var out []string
		seen := map[string]bool{}
		for _, name := range d.Progress {
			it, ok := a.item(name)
			switch {
			case !ok:
				out = append(out, "progress: "+a.noItem(name))
			case it.Type != Milestone:
				out = append(out, fmt.Sprintf("progress: %s is %s, not a milestone", name, it.Type))
			case seen[name]:
				out = append(out, fmt.Sprintf("progress: %s is listed twice", name))
			}
			seen[name] = true
		}
		return out
	}
	if d.Item == "" {
		return []string{"needs an item (or a progress list of milestones)"}
	}
	it, ok := a.aggregatedItem(d.Item)
	if !ok {
		return []string{a.noItem(d.Item)}
	}
	switch {
	case it.Type == Milestone && d.Bucket == "":
		return []string{fmt.Sprintf("%s is a time: give it a bucket (%s)", d.Item, bucketList())}
	case d.Bucket != "" && it.Type != Milestone:
		return []string{fmt.Sprintf("a bucket applies to a milestone, begin_time or end_time, not %s (%s)", d.Item, it.Type)}
	case d.Bucket != "" && !slices.Contains(buckets, d.Bucket):
		return []string{fmt.Sprintf("unknown bucket %q (one of %s)", d.Bucket, bucketList())}
	case len(d.Ranges) > 0 && !it.number():
		return []string{fmt.Sprintf("ranges apply to a number item, not %s (%s)", d.Item, it.Type)}
	case len(d.Ranges) > MaxRanges:
		return []string{fmt.Sprintf("%d ranges, more than the limit of %d", len(d.Ranges), MaxRanges)}
	}
	for k := 1; k < len(d.Ranges); k++ {
		if d.Ranges[k] <= d.Ranges[k-1] {
			return []string{fmt.Sprintf("ranges must ascend (%g after %g)", d.Ranges[k], d.Ranges[k-1])}
		}
	}
	return nil
}

func (a *Activity) checkMeasure(m Measure) []string {
	if !slices.Contains(functions, m.Function) {
		if m.Function == "" {
			return []string{fmt.Sprintf("no function (one of %s)", functionList())}
		}
		return []string{fmt.Sprintf("unknown function %q (one of %s)", m.Function, functionList())}
	}
	if m.Duration() {
		if m.Item != "" {
			return []string{"give either item or from and to, not both"}
		}
		var out []string
		for _, end := range []struct{ key, name string }{{"from", m.From}, {"to", m.To}} {
			if end.name == "" {
				out = append(out, fmt.Sprintf("a duration needs %s: a milestone", end.key))
				continue
			}
			it, ok := a.aggregatedItem(end.name)
			switch {
			case !ok:
				out = append(out, end.key+": "+a.noItem(end.name))
			case it.Type != Milestone:
				out = append(out, fmt.Sprintf("%s: %s is %s, not a milestone", end.key, end.name, it.Type))
			}
		}
		if len(out) == 0 && m.From == m.To {
			out = append(out, "from and to are the same milestone")
		}
		return out
	}
	if m.Item == "" {
		if m.Function == Count {
			return nil
		}
		return []string{fmt.Sprintf("%s needs an item (a number) or from and to (milestones)", m.Function)}
	}
	it, ok := a.item(m.Item)
	switch {
	case !ok:
		return []string{a.noItem(m.Item)}
	case m.Function != Count && !it.number():
		return []string{fmt.Sprintf("%s of %s: %s is %s, not a number", m.Function, m.Item, m.Item, it.Type)}
	}
	return nil
}

// number reports whether the item holds numbers.
func (it Item) number() bool {
	return it.Type == Integer || it.Type == Float || it.Type == Decimal
}

func (a *Activity) itemNames() []string {
	names := make([]string, len(a.Items))
	for i, it := range a.Items {
		names[i] = it.Name
	}
	return names
}

func bucketList() string {
	names := make([]string, len(buckets))
	for i, b := range buckets {
		names[i] = string(b)
	}
	return strings.Join(names, ", ")
}

func functionList() string {
	names := make([]string, len(functions))
	for i, f := range functions {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// Aggregation returns a's aggregation named name in any case.
func (a Activity) Aggregation(name string) (Aggregation, bool) {
	for _, g := range a.Aggregations {
		if strings.EqualFold(g.Name, name) {
			return g, true
		}
	}
	return Aggregation{}, false
}

// ItemsRead lists the items an aggregation reads, in its order, each once.
func (g Aggregation) ItemsRead() []string {
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	for _, d := range g.Dimensions {
		add(d.Item)
		add(d.Progress...)
	}
	for _, m := range g.Measures {
		add(m.Item, m.From, m.To)
	}
	return out
}
