package httpapi

import (
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// TestOpenAPI checks that docs/openapi.yaml parses as OpenAPI 3.1, that it
// describes exactly the routes the server serves, and that every $ref in
// it points at something it defines.
func TestOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
		Comps   map[string]map[string]any            `yaml:"components"`
		Info    struct{ Title, Version string }      `yaml:"info"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Fatalf("openapi %q, info %+v: want 3.1.x with a title and version", doc.OpenAPI, doc.Info)
	}

	s := New(nil, Config{}, slog.New(slog.DiscardHandler))
	served := map[string]bool{}
	for _, r := range s.routes() {
		served[strings.ToLower(r.method)+" "+r.path] = true
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented[method+" "+path] = true
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s %s documents no responses", method, path)
			}
			if _, ok := responses["405"]; !ok {
				t.Errorf("%s %s does not document 405 (every route answers it to other methods)", method, path)
			}
			for status, resp := range responses {
				if !strings.HasPrefix(status, "2") || status == "204" {
					continue
				}
				if !hasSchema(resp, doc.Comps) {
					t.Errorf("%s %s: response %s describes no body schema", method, path, status)
				}
			}
			if body, ok := op["requestBody"].(map[string]any); ok && !hasSchema(body, doc.Comps) {
				t.Errorf("%s %s: the request body has no schema", method, path)
			}
		}
	}
	if missing := diff(served, documented); len(missing) > 0 {
		t.Errorf("routes served but not in docs/openapi.yaml: %v", missing)
	}
	if extra := diff(documented, served); len(extra) > 0 {
		t.Errorf("routes in docs/openapi.yaml that the server does not serve: %v", extra)
	}

	// Every $ref resolves.
	var tree any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	refs := 0
	walk(tree, func(ref string) {
		refs++
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		if !strings.HasPrefix(ref, "#/components/") || len(parts) != 3 || doc.Comps[parts[1]][parts[2]] == nil {
			t.Errorf("$ref %s points at nothing in docs/openapi.yaml", ref)
		}
	})
	if refs == 0 {
		t.Error("no $ref found: the walk is broken")
	}
}

// TestOpenAPISchemasAreTrue holds docs/openapi.yaml's schemas to what the
// API takes and answers: OpenAPI 3.1 has no nullable (a null is a type),
// an event may have every field and kind that package event decodes, and
// a source every kind GET /v1/sources answers. (Before: nullable, an
// Event schema of three kinds without token, related, reference and
// continuation, and no alerts kind.)
func TestOpenAPISchemasAreTrue(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	var visit func(path string, v any)
	visit = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "nullable" {
					t.Errorf("%s: nullable is not OpenAPI 3.1; give the type \"null\" (type: [string, \"null\"], or oneOf)", path)
				}
				visit(path+"/"+k, x)
			}
		case []any:
			for _, x := range v {
				visit(path, x)
			}
		}
	}
	visit("", tree)

	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `yaml:"enum"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	ev := doc.Components.Schemas["Event"]
	fields := reflect.TypeFor[event.Event]()
	for i := range fields.NumField() {
		name, _, _ := strings.Cut(fields.Field(i).Tag.Get("json"), ",")
		if _, ok := ev.Properties[name]; !ok {
			t.Errorf("the Event schema has no field %s, which events may have", name)
		}
	}
	for _, k := range []event.Kind{event.Begin, event.Update, event.End, event.EnableContinuation, event.Relate, event.AddReference} {
		if !slices.Contains(ev.Properties["kind"].Enum, string(k)) {
			t.Errorf("the Event schema's kinds %v lack %s", ev.Properties["kind"].Enum, k)
		}
	}
	for _, k := range []store.SourceKind{store.KindBuffer, store.KindPgOutbox, store.KindAlerts} {
		if !slices.Contains(doc.Components.Schemas["Source"].Properties["kind"].Enum, string(k)) {
			t.Errorf("the Source schema's kinds %v lack %s", doc.Components.Schemas["Source"].Properties["kind"].Enum, k)
		}
	}
	if strings.Contains(string(raw), "(known: begin, update, end)") {
		t.Error("an example lists the kinds of an older version: (known: begin, update, end)")
	}
}

func diff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func walk(v any, ref func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				ref(s)
			}
			walk(x, ref)
		}
	case []any:
		for _, x := range v {
			walk(x, ref)
		}
	}
}

// hasSchema reports whether a response or request body (inline, or a $ref
// to components/responses) gives a schema for each of its media types.
func hasSchema(v any, comps map[string]map[string]any) bool {
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/responses/")
		m, _ = comps["responses"][name].(map[string]any)
	}
	content, _ := m["content"].(map[string]any)
	if len(content) == 0 {
		return false
	}
	for _, media := range content {
		mm, _ := media.(map[string]any)
		if mm["schema"] == nil {
			return false
		}
	}
	return true
}
