package event

import (
	"encoding/json"
	"testing"
)

// TestItemsAppendJSON: the stored form decodes back to the items, whatever
// the names, names in order and nulls left out, and a value that is not
// JSON is refused.
func TestItemsAppendJSON(t *testing.T) {
	its := Items{
		"ok_2":          {Value: json.RawMessage(`true`), Time: 0},
		"Amount":        {Value: json.RawMessage(`1200.5`), Time: 1795606920000000},
		"Customer":      {Value: json.RawMessage(` "Contoso \"Ltd\"" `), Time: -1},
		"we\"ird\\\n é": {Value: json.RawMessage(`"x"`), Time: 42},
		"Gone":          {Value: json.RawMessage(`null`), Time: 7},
		"Missing":       {Time: 7},
	}
	b, err := its.AppendJSON([]byte("junk"))
	if err != nil {
		t.Fatal(err)
	}
	want := `junk{"Amount":{"v":1200.5,"t":1795606920000000},"Customer":{"v":"Contoso \"Ltd\"","t":-1},"ok_2":{"v":true,"t":0},"we\"ird\\\n é":{"v":"x","t":42}}`
	if string(b) != want {
		t.Fatalf("AppendJSON =\n%s\nwant\n%s", b, want)
	}
	var back Items
	if err := json.Unmarshal(b[len("junk"):], &back); err != nil || len(back) != 4 {
		t.Fatalf("%s decodes to %v, %v", b, back, err)
	}
	if b, err := (Items{}).AppendJSON(nil); err != nil || string(b) != "{}" {
		t.Fatalf("no items = %s, %v; want {}", b, err)
	}
	if _, err := (Items{"A": {Value: json.RawMessage(`{"v":`)}}).AppendJSON(nil); err == nil {
		t.Fatal("a value that is not JSON was written")
	}
}

func TestStorableText(t *testing.T) {
	for v, want := range map[string]bool{
		`"plain"`: true, `12`: true, ``: true, `"\u00e9"`: true, `"\ud83d\ude00"`: true,
		`"a\u0000b"`: false, `"\ud83d"`: false, `"\ude00x"`: false, "\"\xff\"": false,
	} {
		if got := StorableText(json.RawMessage(v)); got != want {
			t.Errorf("StorableText(%s) = %v, want %v", v, got, want)
		}
	}
}
