// Package suggest finds the name a user most likely meant when the one they
// typed names nothing: a source, an activity, a subcommand. A misspelled
// name must be an error that names it and offers the closest known one,
// never an empty answer that reads as "nothing there".
package suggest

import (
	"strings"
	"unicode/utf8"
)

// Closest returns the candidate nearest to name, or "" when none is near
// enough to be a likely misspelling. A candidate that differs from name only
// in case is always near; otherwise the edit distance (insertions,
// deletions, substitutions and swaps of two neighbours, ignoring case) must
// be at most a third of name's length, and at least 1 and at most 3. Ties go
// to the earlier candidate.
func Closest(name string, candidates []string) string {
	best, bestDist := "", -1
	folded := strings.ToLower(name)
	limit := min(max(utf8.RuneCountInString(name)/3, 1), 3)
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := distance(folded, strings.ToLower(c))
		if d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

// DidYouMean returns " (did you mean X?)" for the closest candidate, or "".
func DidYouMean(name string, candidates []string) string {
	if c := Closest(name, candidates); c != "" {
		return " (did you mean " + c + "?)"
	}
	return ""
}

// distance is the optimal string alignment distance between a and b, by
// runes: the Levenshtein distance with the swap of two neighbours as one
// edit ("stauts" is one edit from "status").
func distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	// rows i-2, i-1 and i of the table.
	prev2 := make([]int, len(y)+1)
	prev := make([]int, len(y)+1)
	cur := make([]int, len(y)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(x); i++ {
		cur[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(y)]
}
