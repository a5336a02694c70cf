package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bam-dev/bam/internal/event"
	"github.com/bam-dev/bam/internal/store"
)

// TestEventsAreCheckedAgainstTheDeployedDefinitions follows an event that
// does not fit its activity's definition: bam emit refuses it, naming the
// item and the rule; written past emit (here, by an application writing the
// buffer through an older bam), a node quarantines it; bam failed retry
// keeps it while the definition still refuses it, and applies it once a
// definition that accepts it is deployed.
func TestEventsAreCheckedAgainstTheDeployedDefinitions(t *testing.T) {
	b := migrated(t)
	b.ok("deploy", exampleDefinitions)
	b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "2")

	b.fails(exitError, "", []string{"emit", "--source", "orders", "--activity", "PurchaseOrder", "--instance", "PO-1",
		"--kind", "begin", "--data", "Quantity=twelve"}, "event refused", "data.Quantity", "integer: must be a number")
	r := b.fails(exitError, `{"activity":"PurchaseOrder","instance":"PO-1","kind":"begin","data":{"Quantity":3}}
{"activity":"PurchaseOrder","instance":"PO-1","kind":"update","data":{"Quantity":"x"}}
{"activity":"PurchaseOrder","instance":"PO-1","kind":"update","data":{"Colour":"red"}}
{"activity":"Purchaseorder","instance":"PO-1","kind":"update"}
`, []string{"emit", "--source", "orders", "--file", "-"},
		"line 2: data.Quantity: integer: must be a number", "line 3: data.Colour: not an item of activity PurchaseOrder",
		"line 4: activity: activity \"Purchaseorder\" is not deployed (did you mean PurchaseOrder?")
	if !strings.Contains(r.stdout, "wrote 1 event to source orders") {
		t.Errorf("emit wrote:\n%s", r.stdout)
	}

	// An event that bypassed emit's check reaches a node, which
	// quarantines it with the definition's reason.
	st := b.store()
	err := st.AppendBuffer(context.Background(), "orders", []store.BufferEvent{{Partition: event.Partition("PO-1", 2),
		Payload: []byte(`{"activity":"PurchaseOrder","instance":"PO-1","kind":"update","data":{"Colour":"red"}}`)}})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- b.runCtx(ctx, "", "serve", "--name", "inproc", "--poll-interval", "50ms") }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.run("", "failed", "list").stdout, "data.Colour: not an item of activity PurchaseOrder") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the event was not quarantined within 15s; serve log:\n%s", (<-done).stderr)
		}
		time.Sleep(20 * time.Millisecond) // polls a running serve; on failure the loop shows its log
	}
	cancel()
	<-done
	id := strings.Fields(strings.Split(b.ok("failed", "list").stdout, "\n")[1])[0]

	b.fails(exitError, "", []string{"failed", "retry", id}, "still refused by the deployed definition of PurchaseOrder",
		"data.Colour", "deploy a definition that accepts it")
	var src []byte
	src, err = os.ReadFile(exampleDefinitions)
	if err != nil {
		t.Fatal(err)
	}
	extended := filepath.Join(b.dir, "extended.yaml")
	writeFile(t, extended, strings.Replace(string(src), "      - {name: Rush,", "      - {name: Colour, type: text, max_length: 20}\n      - {name: Rush,", 1))
	if !strings.Contains(string(src), "      - {name: Rush,") {
		t.Fatal("the example definitions changed: this test adds an item before Rush")
	}
	b.ok("deploy", extended)
	b.ok("failed", "retry", id)
	if r := b.ok("instance", "get", "PurchaseOrder", "PO-1", "--json"); !strings.Contains(r.stdout, `"Colour": "red"`) {
		t.Errorf("after the retry, PO-1 is:\n%s", r.stdout)
	}
}

// TestRequireDefinitions: with --require-definitions a node quarantines the
// events of an activity that has no deployed definition; without it, it
// keeps them untyped.
func TestRequireDefinitions(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "required"}[strict], func(t *testing.T) {
			b := migrated(t)
			b.ok("deploy", exampleDefinitions)
			b.ok("source", "add", "orders", "--kind", "buffer", "--partitions", "1")
			b.ok("emit", "--source", "orders", "--activity", "Invoice", "--instance", "INV-1", "--kind", "begin", "--data", "Total=3")
			args := []string{"serve", "--name", "inproc", "--poll-interval", "50ms"}
			if strict {
				args = append(args, "--require-definitions")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan result, 1)
			go func() { done <- b.runCtx(ctx, "", args...) }()
			deadline := time.Now().Add(15 * time.Second)
			for {
				if strict && strings.Contains(b.run("", "failed", "list").stdout, `activity "Invoice" is not deployed`) {
					break
				}
				if !strict && b.run("", "instance", "get", "Invoice", "INV-1").code == 0 {
					break
				}
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("the event was neither quarantined nor applied as expected within 15s; serve log:\n%s", (<-done).stderr)
				}
				time.Sleep(20 * time.Millisecond) // polls a running serve; on failure the loop shows its log
			}
			cancel()
			<-done
			if strict && b.run("", "instance", "get", "Invoice", "INV-1").code == 0 {
				t.Error("--require-definitions: the undeployed activity's instance exists")
			}
		})
	}
}
