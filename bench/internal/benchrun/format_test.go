package benchrun

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want Summary
	}{
		{[]float64{7}, Summary{7, 7, 7, 1}},
		{[]float64{3, 1, 2}, Summary{2, 1, 3, 3}},                                              // odd: the middle one
		{[]float64{4, 1, 3, 2}, Summary{2.5, 1, 4, 4}},                                         // even: the mean of the middle two
		{[]float64{0.0701, 0.0852, 0.0634, 0.0699, 0.071}, Summary{0.0701, 0.0634, 0.0852, 5}}, // unsorted
		{[]float64{10, 10}, Summary{10, 10, 10, 2}},
		{nil, Summary{}},
	} {
		in := append([]float64(nil), c.in...)
		if got := Summarize(c.in); got != c.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("summarize sorted its argument: %v", c.in)
			}
		}
	}
}

func TestFormatNumber(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{5, "5"},
		{1000, "1,000"},
		{87024, "87,024"},
		{87024.4, "87,024"},
		{1242099, "1,242,099"},
		{-1242099, "-1,242,099"},
		{999.4, "999"},
		{999.6, "1,000"},
		{243.5, "244"},
		{51.24, "51.2"},
		{10.04, "10"},
		{3.314, "3.31"},
		{2.5, "2.5"},
		{0.164, "0.164"},
		{0.0701, "0.0701"},
		{0.07010, "0.0701"},
		{0.08, "0.08"},
		{0.00123456, "0.00123"},
		{-0.0701, "-0.0701"},
		{0.00001234, "1.23e-05"},
		{2.5e15, "2.5e+15"},
		{math.NaN(), "NaN"},
	} {
		if got := FormatNumber(c.in); got != c.want {
			t.Errorf("FormatNumber(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
