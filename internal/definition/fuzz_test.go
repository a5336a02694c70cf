package definition

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bam-dev/bam/internal/event"
)

// FuzzParse: Parse never panics; what it accepts keeps every rule, and
// writing it out and parsing it again gives the same definition. The seed
// corpus is in testdata/fuzz/FuzzParse.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 1m ./internal/definition
func FuzzParse(f *testing.F) {
	f.Add([]byte(purchaseOrder))
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if len(def.Activities) == 0 {
			t.Fatal("accepted a file without activities")
		}
		for _, a := range def.Activities {
			if checkName(a.Name, MaxActivityName) != "" || len(a.Items) == 0 {
				t.Fatalf("accepted activity %+v", a)
			}
			for _, it := range a.Items {
				if checkName(it.Name, MaxItemName) != "" || !strings.ContainsAny(string(it.Type), "abcdefghijklmnopqrstuvwxyz") {
					t.Fatalf("accepted item %+v", it)
				}
				if it.Type == Decimal && (it.Scale == nil || *it.Scale > it.Precision) {
					t.Fatalf("decimal without its defaults: %+v", it)
				}
			}
		}
		out, err := yaml.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("a written definition does not parse: %v\n%s", err, out)
		}
		strip := func(f File) File {
			for i := range f.Activities {
				f.Activities[i].line = 0
				for j := range f.Activities[i].Items {
					f.Activities[i].Items[j].line = 0
				}
			}
			return f
		}
		if !reflect.DeepEqual(strip(def), strip(again)) {
			t.Fatalf("round trip changed the definition:\n%+v\n%+v", def, again)
		}
	})
}

// FuzzValidate: checking any JSON value against every type of item never
// panics, and an accepted value is one the type can hold.
//
//	go test -run '^$' -fuzz FuzzValidate -fuzztime 1m ./internal/definition
func FuzzValidate(f *testing.F) {
	for _, v := range []string{`1`, `-2.50`, `"12.5"`, `1e400`, `"2026-11-25T10:02:00Z"`, `true`, `"Ann"`, `1e-5`} {
		f.Add([]byte(v))
	}
	def, err := Parse([]byte(`activities:
  - name: A
    items:
      - {name: m, type: milestone}
      - {name: t, type: text, max_length: 5}
      - {name: d, type: decimal, precision: 6, scale: 2}
      - {name: i, type: integer}
      - {name: f, type: float}
      - {name: b, type: boolean}
`))
	if err != nil {
		f.Fatal(err)
	}
	a := def.Activities[0]
	f.Fuzz(func(t *testing.T, v []byte) {
		if !json.Valid(v) {
			return
		}
		for _, it := range a.Items {
			err := a.Validate(event.Event{Data: map[string]json.RawMessage{it.Name: v}})
			if err != nil && err.Error() == "" {
				t.Fatal("an error without a message")
			}
			if err != nil || string(bytes.TrimSpace(v)) == "null" {
				continue
			}
			switch it.Type {
			case Integer:
				var n int64
				if json.Unmarshal(v, &n) != nil && !strings.ContainsAny(string(v), ".eE") {
					t.Fatalf("integer accepted %s", v)
				}
			case Boolean:
				var b bool
				if json.Unmarshal(v, &b) != nil {
					t.Fatalf("boolean accepted %s", v)
				}
			}
		}
	})
}
