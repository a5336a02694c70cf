package event

import (
	"testing"
	"time"
)

func BenchmarkDecode(b *testing.B) {
	raw := []byte(`{"activity":"PurchaseOrder","instance":"PO-000123","kind":"update","time":"2026-11-25T10:02:00Z","data":{"Approved":"2026-11-25T10:02:00Z","Amount":1200,"Customer":"Contoso"}}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(raw, time.Time{}, 0); err != nil {
			b.Fatal(err)
		}
	}
}
