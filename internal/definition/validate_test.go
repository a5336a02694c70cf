package definition

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bam-dev/bam/internal/event"
)

func TestValidate(t *testing.T) {
	f := mustParse(t, `activities:
  - name: PurchaseOrder
    items:
      - {name: Approved, type: milestone}
      - {name: Customer, type: text, max_length: 5}
      - {name: Amount, type: decimal, precision: 6, scale: 2}
      - {name: Quantity, type: integer}
      - {name: Weight, type: float}
      - {name: Rush, type: boolean}
`)
	po := f.Activities[0]
	for _, tc := range []struct {
		name, data  string
		field, want string // want: "" for valid
	}{
		{"all valid", `{"Approved":"2026-11-25T10:02:00Z","Customer":"Ann","Amount":1234.56,"Quantity":3,"Weight":2.5e3,"Rush":true}`, "", ""},
		{"null sets nothing", `{"Customer":null,"Nope":null}`, "", ""},
		{"decimal as a string", `{"Amount":"-9999.99"}`, "", ""},
		{"text in characters", `{"Customer":"ÅÄÖüé"}`, "", ""},
		{"integer written with an exponent", `{"Quantity":1e3}`, "", ""},
		{"unknown item", `{"Colour":"red"}`, "data.Colour", "not an item of activity PurchaseOrder; deploy a definition that adds it"},
		{"wrong case", `{"amount":1}`, "data.amount", "did you mean Amount?"},
		{"milestone not a time", `{"Approved":"soon"}`, "data.Approved", `milestone: "soon" is not an RFC 3339 time`},
		{"milestone a number", `{"Approved":17}`, "data.Approved", "milestone: must be an RFC 3339 time as a string"},
		{"text too long", `{"Customer":"Annabel"}`, "data.Customer", "text(5): 7 characters, more than the 5 allowed"},
		{"text a number", `{"Customer":5}`, "data.Customer", "text: must be a string, got 5"},
		{"decimal too precise", `{"Amount":1.234}`, "data.Amount", "decimal(6,2): 1.234 has more than 2 digits after the point"},
		{"decimal too large", `{"Amount":12345.6}`, "data.Amount", "decimal(6,2): 12345.6 has more than 4 digits before the point"},
		{"decimal not a number", `{"Amount":"12abc"}`, "data.Amount", "decimal: must be a number or a string holding one"},
		{"decimal a fraction", `{"Amount":"1/3"}`, "data.Amount", "decimal: must be a number or a string holding one"},
		{"decimal a word with an e", `{"Amount":"hello"}`, "data.Amount", `decimal: must be a number or a string holding one, got "hello"`},
		{"decimal a word with an E", `{"Amount":"notanumber"}`, "data.Amount", `decimal: must be a number or a string holding one, got "notanumber"`},
		{"decimal an exponent without digits", `{"Amount":"1e"}`, "data.Amount", "decimal: must be a number or a string holding one"},
		{"decimal a number with an exponent", `{"Amount":"12.5e2"}`, "", ""},
		{"integer with a fraction", `{"Quantity":2.5}`, "data.Quantity", "integer: 2.5 is not a whole number"},
		{"integer too large", `{"Quantity":9223372036854775808}`, "data.Quantity", "outside the 64-bit range"},
		{"integer a string", `{"Quantity":"3"}`, "data.Quantity", "integer: must be a number"},
		{"float too large", `{"Weight":1e400}`, "data.Weight", "float: 1e400 is outside the 64-bit range"},
		{"huge exponent, integer", `{"Quantity":1e999999999}`, "data.Quantity", "outside the 64-bit range"},
		{"huge exponent, float", `{"Weight":-1e999999999}`, "data.Weight", "outside the 64-bit range"},
		{"huge exponent, decimal", `{"Amount":"1e999999999"}`, "data.Amount", "decimal(6,2): 1e999999999 is out of range"},
		{"tiny exponent, integer", `{"Quantity":1e-999999999}`, "data.Quantity", "is not a whole number"},
		{"tiny exponent, float", `{"Weight":1e-999999999}`, "data.Weight", "too close to 0"},
		{"subnormal float", `{"Weight":-4e-320}`, "data.Weight", "too close to 0"},
		{"zero float", `{"Weight":0.0}`, "", ""},
		{"boolean a string", `{"Rush":"yes"}`, "data.Rush", `boolean: must be true or false, got "yes"`},
		{"first problem in name order", `{"Rush":1,"Amount":"x"}`, "data.Amount", "decimal:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var data map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.data), &data); err != nil {
				t.Fatal(err)
			}
			err := po.Validate(event.Event{Activity: "PurchaseOrder", Instance: "PO-1", Kind: event.Update, Data: data})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid event refused: %v", err)
				}
				return
			}
			var eerr *event.Error
			if !errors.As(err, &eerr) || eerr.Field != tc.field || !strings.Contains(eerr.Reason, tc.want) {
				t.Fatalf("got %v, want field %s and a reason containing %q", err, tc.field, tc.want)
			}
		})
	}
}
