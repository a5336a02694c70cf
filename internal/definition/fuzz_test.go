package definition

import (
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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
