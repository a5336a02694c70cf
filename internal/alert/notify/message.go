package notify

import (
	"encoding/json"
	"fmt"
	"time"
)

// Message is one alert firing as it is delivered.
type Message struct {
	// DeliveryID is stable across retries; receivers drop repeats by it.
	// It is 1 to 128 ASCII letters, digits, '-', '_' or '.', since it
	// travels in a header and a Message-ID.
	DeliveryID string
	FiringID   int64
	Activity   string
	Alert      string
	Severity   string // "info", "warning" or "critical"
	// Key is the instance id (instance alerts) or the aggregation cell's
	// key (aggregate alerts).
	Key     string
	Message string // the alert's text, already expanded
	// Value is, for aggregate alerts, the measure's value that crossed
	// the threshold; "" otherwise.
	Value   string
	FiredAt time.Time
	Link    string // "" or an absolute URL to the portal page of the instance or aggregation
	Test    bool   // sent by `bam alert test`, not by a real firing
}

// firedAtLayout is RFC 3339 in UTC with a fixed six fractional digits, the
// precision at which bam stores times, so receivers that parse with a
// fixed layout always see the same shape.
const firedAtLayout = "2006-01-02T15:04:05.000000Z"

// wireMessage is the webhook body: snake_case fields, empty optional ones
// left out.
type wireMessage struct {
	DeliveryID string `json:"delivery_id"`
	FiringID   int64  `json:"firing_id"`
	Activity   string `json:"activity"`
	Alert      string `json:"alert"`
	Severity   string `json:"severity"`
	Key        string `json:"key"`
	Message    string `json:"message"`
	Value      string `json:"value,omitempty"`
	FiredAt    string `json:"fired_at"`
	Link       string `json:"link,omitempty"`
	Test       bool   `json:"test,omitempty"`
}

// MarshalJSON encodes m as the webhook body (see the package doc).
func (m Message) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireMessage{
		DeliveryID: m.DeliveryID, FiringID: m.FiringID,
		Activity: m.Activity, Alert: m.Alert, Severity: m.Severity,
		Key: m.Key, Message: m.Message, Value: m.Value,
		FiredAt: m.FiredAt.UTC().Format(firedAtLayout),
		Link:    m.Link, Test: m.Test,
	})
}

// UnmarshalJSON decodes a webhook body, for Go receivers and tests.
func (m *Message) UnmarshalJSON(data []byte) error {
	var w wireMessage
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	firedAt, err := time.Parse(time.RFC3339Nano, w.FiredAt)
	if err != nil {
		return fmt.Errorf("fired_at: %w", err)
	}
	*m = Message{
		DeliveryID: w.DeliveryID, FiringID: w.FiringID,
		Activity: w.Activity, Alert: w.Alert, Severity: w.Severity,
		Key: w.Key, Message: w.Message, Value: w.Value,
		FiredAt: firedAt, Link: w.Link, Test: w.Test,
	}
	return nil
}

// maxDeliveryID bounds the id so that the headers that carry it stay short.
const maxDeliveryID = 128

// checkDeliveryID refuses an id that could not travel safely in a header
// or a Message-ID; such an id is the caller's bug, so it is permanent.
func checkDeliveryID(id string) error {
	if id == "" || len(id) > maxDeliveryID {
		return permanent(fmt.Errorf("delivery id %q: want 1 to %d characters", id, maxDeliveryID))
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return permanent(fmt.Errorf("delivery id %q: only letters, digits, '-', '_' and '.' are allowed", id))
		}
	}
	return nil
}
