package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestParseDocSteps: a block is cut where bash would cut it (quotes and
// backslashes carry a command over lines), and the comments after a
// command that start with JSON are its output until the JSON is complete.
func TestParseDocSteps(t *testing.T) {
	doc := "text\n\n<!-- docs-test: setup\nbam migrate\n-->\n<!-- docs-test: expect PO-1 -->\n```sh\n" +
		"curl -sS http://x/events \\\n  --data-binary '[\n    {\"a\": 1}\n  ]'\n" +
		"# {\"activity\":\"A\",\n#  \"end\":null}\n" +
		"bam status   # nodes, # sessions\n" +
		"# on PostgreSQL: psql -c 'SELECT 1'\n" +
		"curl -sS 'http://x/list'\n# {\"instances\":[...],\"next\":\"PO-1142\"}\n" +
		"```\n\n```console\n$ bam status\nNODES\n  none\n$ bam failed list\n```\n"
	blocks, err := parseDoc("doc.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("got %d blocks, want 2", len(blocks))
	}
	sh := blocks[0]
	if sh.line != 7 || len(sh.setup) != 1 || sh.setup[0].text != "bam migrate" || strings.Join(sh.expect, " ") != "PO-1" {
		t.Errorf("sh block: line %d, setup %+v, expect %q", sh.line, sh.setup, sh.expect)
	}
	want := []docStep{
		{line: 8, text: "curl -sS http://x/events \\\n  --data-binary '[\n    {\"a\": 1}\n  ]'", output: "{\"activity\":\"A\",\n \"end\":null}\n"},
		{line: 14, text: "bam status   # nodes, # sessions"},
		{line: 16, text: "curl -sS 'http://x/list'", output: "{\"instances\":[...],\"next\":\"PO-1142\"}\n"},
	}
	if len(sh.steps) != len(want) {
		t.Fatalf("sh block: got steps %+v, want %+v", sh.steps, want)
	}
	for i := range want {
		if sh.steps[i] != want[i] {
			t.Errorf("step %d: got %+v, want %+v", i, sh.steps[i], want[i])
		}
	}
	console := blocks[1].steps
	if len(console) != 2 || console[0].text != "bam status" || console[0].output != "NODES\nnone\n" || console[1].text != "bam failed list" {
		t.Errorf("console block: got %+v", console)
	}
}

// TestParseDocMarkerMistakes: a marker that says nothing a reader can
// check, or that applies to no block, is an error, and so is a block of
// commands left unlabelled (it would never run).
func TestParseDocMarkerMistakes(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"<!-- docs-test: skip -->\n```sh\nfalse\n```\n", "needs its reason"},
		{"<!-- docs-test: skip () -->\n```sh\nfalse\n```\n", "needs its reason"},
		{"<!-- docs-test: sometimes (why) -->\n```sh\nfalse\n```\n", "unknown marker"},
		{"<!-- docs-test: background -->\nSome text.\n\n```sh\nbam serve\n```\n", "not followed by a command block"},
		{"<!-- docs-test: skip (why) -->\n```json\n{}\n```\n", "which is not run"},
		{"```\nbam status\n```\n", "without a label"},
		{"<!-- docs-test: skip (why)\n", "without its closing"},
		{"```sh\necho 'open\n```\n", "never finished"},
	} {
		if _, err := parseDoc("doc.md", tc.doc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error saying %q", tc.doc, err, tc.want)
		}
	}
}

// TestCheckOutput: JSON the doc shows matches by value, fields it leaves
// out and times aside.
func TestCheckOutput(t *testing.T) {
	for _, tc := range []struct {
		doc, got string
		ok       bool
	}{
		{`{"accepted":2,"rejected":[]}`, `{"accepted":2,"rejected":[]}`, true},
		{`{"accepted":2,"rejected":[]}`, `{"accepted":1,"rejected":[]}`, false},
		{`{"accepted":2}`, `{"accepted":2,"more":true}`, true},
		{`{"accepted":2,"rejected":[]}`, `{"accepted":2}`, false},
		{`{"begin":"2026-11-25T10:00:00Z"}`, `{"begin":"2026-12-03T17:28:02.414242Z"}`, true},
		{`{"begin":"2026-11-25T10:00:00Z"}`, `{"begin":"soon"}`, false},
		{`{"instances":[...]}`, `{"instances":[]}`, true},
		{`{"instances":[...]}`, `no instances`, false},
		{`not JSON`, `anything`, true},
	} {
		if err := checkOutput(tc.doc, tc.got); (err == nil) != tc.ok {
			t.Errorf("doc %s, got %s: %v, want ok=%v", tc.doc, tc.got, err, tc.ok)
		}
	}
}

// TestDocsRunnerFindsDrift runs a made-up doc: each way a doc can be wrong
// is reported, and a block marked skip is not run.
func TestDocsRunnerFindsDrift(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	doc := "<!-- docs-test: skip (made up) -->\n```sh\nfalse\n```\n" +
		"```sh\necho '{\"accepted\":2}'\n# {\"accepted\":2}\n```\n" +
		"```sh\nbam nosuch-command\n```\n" +
		"```sh\necho '{\"accepted\":1}'\n# {\"accepted\":2}\n```\n" +
		"<!-- docs-test: syntax (made up) -->\n```sh\nbam failed retyr 17\n```\n" +
		"<!-- docs-test: syntax (made up) -->\n```sh\nbam failed retry 17 --payloads fixed.json\n```\n" +
		"<!-- docs-test: syntax (made up) -->\n```sh\nbam failed list [--source S]\n```\n" +
		"<!-- docs-test: syntax (made up) -->\n```sh\nbam failed retry 17 --payload fixed.json\n```\n" +
		"<!-- docs-test: expect PO-1 -->\n```sh\necho PO-2\n```\n" +
		"<!-- docs-test: background -->\n```sh\ntrue\n```\n"
	blocks, err := parseDoc("made-up.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	r := newDocRun(t, repo, docsLinks(t), "made-up.md", blocks)
	problems := strings.Join(r.run(blocks), "\n")
	for _, want := range []string{
		"made-up.md:9: the block failed",                      // a command that fails
		`unknown command "nosuch-command"`,                    // ... with bam's message
		"made-up.md:13: the doc shows",                        // output other than the doc's
		`bam failed has no command "retyr"`,                   // syntax: a subcommand
		"unknown flag: --payloads",                            // syntax: a flag
		"[--source is usage notation",                         // syntax: not a command as typed
		"does not show PO-1",                                  // expect
		"the background block ended before it started a node", // background
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("the problems do not say %q:\n%s", want, problems)
		}
	}
	for _, unwanted := range []string{"made-up.md:2:", "made-up.md:6:", "--payload fixed.json:"} {
		if strings.Contains(problems, unwanted) {
			t.Errorf("the problems name %q, which is right or skipped:\n%s", unwanted, problems)
		}
	}
}
