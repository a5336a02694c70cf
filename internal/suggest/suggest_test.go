package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"status", "source", "serve", "PurchaseOrder", "Shipment", "orders"}
	for _, c := range []struct{ name, want string }{
		{"stauts", "status"},
		{"sourc", "source"},
		{"purchaseorder", "PurchaseOrder"}, // case only
		{"PurchaseOrdr", "PurchaseOrder"},
		{"order", "orders"},
		{"Shipmnet", "Shipment"},
		{"xyz", ""},     // nothing near
		{"s", ""},       // too short to guess from: "status" is 5 edits away
		{"status", ""},  // the name itself is not a suggestion
		{"Invoice", ""}, // far from everything
		{"ordres", "orders"},
	} {
		if got := Closest(c.name, known); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if got := DidYouMean("stauts", known); got != " (did you mean status?)" {
		t.Errorf("DidYouMean = %q", got)
	}
	if got := DidYouMean("xyz", known); got != "" {
		t.Errorf("DidYouMean of nothing near = %q", got)
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"ab", "ba", 1}, {"stauts", "status", 1}, {"café", "cafe", 1},
	} {
		if got := distance(c.a, c.b); got != c.want {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
