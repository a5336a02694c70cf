package benchrun

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Summary is the median, min and max of a metric's values over the runs.
type Summary struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the median, min and max of values, which it leaves as
// they are.
func Summarize(values []float64) Summary {
	if len(values) == 0 {
		return Summary{}
	}
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// FormatNumber writes v for a reader: whole numbers and anything from
// 1,000 up with thousands separators and no decimals, smaller numbers with
// 3 significant digits (0.0701, 0.164, 3.31, 51.2, 244), trailing zeros
// dropped.
func FormatNumber(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	a := math.Abs(v)
	switch {
	case a >= 1e15:
		return strconv.FormatFloat(v, 'g', 3, 64)
	case a == 0:
		return "0"
	case a < 1e-4:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	decimals := 0
	if a < 999.5 && a != math.Trunc(a) {
		decimals = max(0, 2-int(math.Floor(math.Log10(a))))
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteString("." + frac)
	}
	if b.String() == "0" {
		return "0"
	}
	return sign + b.String()
}

// Row is one line of the machine header: a label and its value.
type Row struct{ Label, Value string }

// WriteRows writes rows as a two-column Markdown table.
func WriteRows(b *strings.Builder, rows []Row) {
	b.WriteString("| | |\n| --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s |\n", Cell(r.Label), Cell(r.Value))
	}
}

// Plural is "1 noun" or "n nouns".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// TrimSkipped drops the "SKIPPED: " the benchmarks start their skip
// messages with: the row already says it.
func TrimSkipped(s string) string {
	if len(s) >= 8 && strings.EqualFold(s[:8], "SKIPPED:") {
		return s[8:]
	}
	return s
}

// Cell makes s safe inside a Markdown table cell.
func Cell(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ", "|", `\|`).Replace(s)
	return Clip(s)
}

// Clip cuts s to 300 characters.
func Clip(s string) string {
	const most = 300
	if r := []rune(s); len(r) > most {
		return string(r[:most]) + "…"
	}
	return s
}

// FormatDuration writes d as "12.3 s" or "4 min 5 s".
func FormatDuration(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	if d < time.Minute {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
}

// Code is s as Markdown code.
func Code(s string) string { return "`" + s + "`" }

var plainArg = regexp.MustCompile(`^[A-Za-z0-9_./=:,+@%-]+$`)

// ShellQuote quotes s for a POSIX shell if it needs it.
func ShellQuote(s string) string {
	if plainArg.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin is args as a shell command line.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}
