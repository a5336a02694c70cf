package search

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/bam-dev/bam/internal/definition"
)

func TestTree(t *testing.T) {
	f, err := Parse(`Customer = 'O''Neil' AND (Amount BETWEEN 10 AND 20.5 OR NOT Rush = true) AND Received IN LAST 2h AND end_time IS EMPTY`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(Tree(f))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"and":[{"field":"Customer","op":"=","values":[{"kind":"string","text":"O'Neil"}]},` +
		`{"or":[{"field":"Amount","op":"BETWEEN","values":[{"kind":"number","text":"10"},{"kind":"number","text":"20.5"}]},` +
		`{"not":{"field":"Rush","op":"=","values":[{"kind":"boolean","text":"true"}]}}]},` +
		`{"field":"Received","op":"IN LAST","values":[{"kind":"duration","text":"2h"}]},` +
		`{"field":"end_time","op":"IS EMPTY"}]}`
	if string(got) != want {
		t.Errorf("tree\n got %s\nwant %s", got, want)
	}
	if Tree(Filter{}) != nil {
		t.Error("the empty filter has a tree")
	}
}

func TestFields(t *testing.T) {
	a := definition.Activity{Name: "PO", Items: []definition.Item{
		{Name: "Customer", Type: definition.Text}, {Name: "Amount", Type: definition.Decimal},
		{Name: "Rush", Type: definition.Boolean}, {Name: "Received", Type: definition.Milestone},
	}}
	fields := Fields(a)
	byName := map[string]FieldJSON{}
	var names []string
	for _, f := range fields {
		byName[f.Name] = f
		names = append(names, f.Name)
	}
	if want := []string{"Customer", "Amount", "Rush", "Received", "instance_id", "state", "begin_time", "end_time", "last_modified", "events"}; !slices.Equal(names, want) {
		t.Errorf("fields %v, want %v", names, want)
	}
	for name, want := range map[string][]string{
		"Customer": {"=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN", "NOT IN", "CONTAINS", "STARTS WITH", "IS EMPTY", "IS NOT EMPTY"},
		"Amount":   {"=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN", "NOT IN", "IS EMPTY", "IS NOT EMPTY"},
		"Rush":     {"=", "!=", "IN", "NOT IN", "IS EMPTY", "IS NOT EMPTY"},
		"Received": {"=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN", "NOT IN", "IN LAST", "IS EMPTY", "IS NOT EMPTY"},
		"state":    {"=", "!=", "IN", "NOT IN", "IS EMPTY", "IS NOT EMPTY"},
	} {
		if got := byName[name].Operators; !slices.Equal(got, want) {
			t.Errorf("%s: operators %v, want %v", name, got, want)
		}
	}
	if f := byName["Received"]; f.Type != "time" || !f.Item {
		t.Errorf("Received: %+v", f)
	}
	if f := byName["state"]; f.Type != "state" || f.Item {
		t.Errorf("state: %+v", f)
	}
}
