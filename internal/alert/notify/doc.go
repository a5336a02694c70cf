// Package notify delivers one alert firing to one subscriber, by webhook
// (JSON over HTTP POST, signed with HMAC-SHA256) or by email (SMTP). It
// makes a single attempt and says what kind of failure it met; the caller
// owns retries and their backoff:
//
//	err == nil                      delivered
//	errors.Is(err, ErrPermanent)    retrying cannot help: give up
//	errors.As(err, &ra)             ra is a *RetryAfterError: the receiver asked to wait ra.After
//	any other error                 retry after the caller's backoff
//
// Deliveries are at least once: an attempt whose answer was lost is sent
// again. Every delivery carries a DeliveryID that stays the same across
// its retries, so a receiver drops a repeat by remembering the ids it has
// seen.
//
// # Webhook request
//
// The request is a POST with Content-Type: application/json, whose body is
// one JSON object:
//
//	{
//	  "delivery_id": "bam-6f1c0e2a9b7d4c3e",          same on every retry; drop repeats by it
//	  "firing_id":   1207,
//	  "activity":    "orders",
//	  "alert":       "late_shipment",
//	  "severity":    "warning",                       "info", "warning" or "critical"
//	  "key":         "order-88412",                   the instance id, or the aggregation cell's key
//	  "message":     "Order order-88412 not shipped after 48h",
//	  "value":       "17",                            aggregate alerts only: the measure that crossed the threshold
//	  "fired_at":    "2026-03-02T14:05:09.481230Z",
//	  "link":        "https://bam.example.com/...",   only when the portal's address is known
//	  "test":        true                             only when sent by `bam alert test`
//	}
//
// value, link and test are left out when empty or false. fired_at is
// RFC 3339 in UTC, always with six fractional digits.
//
// The headers:
//
//	X-Bam-Delivery:  the delivery id (the same as delivery_id)
//	X-Bam-Timestamp: when this attempt was sent, in Unix seconds
//	X-Bam-Signature: sha256=<hex>, only when the subscription has a secret
//
// The signature is the hex-encoded HMAC-SHA256, keyed with the secret, of
// the timestamp, a period, and the body exactly as received:
//
//	hex(HMAC-SHA256(secret, X-Bam-Timestamp + "." + body))
//
// A receiver recomputes it over the raw body, before parsing the JSON,
// compares the two in constant time, and refuses a timestamp more than a
// few minutes away from its own clock: the timestamp is signed so that a
// captured request cannot be replayed later. Go receivers can call Verify.
//
// Any 2xx answer is success. 408, 425, 429 and 5xx answers, and failures
// to connect or to read the answer, are worth retrying; a 429 or 503 with
// a Retry-After header (in seconds or as an HTTP date) is a
// *RetryAfterError. Redirects are not followed: a 3xx is a permanent
// error that names the Location, so that the subscription is corrected
// rather than a signed payload sent somewhere else. Every other status is
// permanent.
//
// An error names the URL without its user information and query, which
// may hold credentials, with the status and at most 200 bytes of the
// answer's body.
//
// # Email
//
// The email is plain text in UTF-8 (quoted-printable):
//
//	Subject:        [bam <severity>] <activity>.<alert>: <first line of the message, at most 120 characters>
//	Message-ID:     <delivery id@bam>
//	X-Bam-Delivery: <delivery id>
//	Auto-Submitted: auto-generated
//
// and From, To and Date. The body holds the message, then the activity,
// alert, severity, key, value (if any), firing time, link (if any) and
// delivery id, one per line; a test says so first. A carriage return or line feed in any of those fields never
// starts a header of its own: in a header it becomes a space.
//
// The Mailer uses STARTTLS whenever the server offers it, and requires it
// of a server that is not on a loopback address; it authenticates (PLAIN)
// only on such a connection. A 5xx reply is permanent, a 4xx reply or a
// connection failure is worth retrying, and an address that does not parse
// as a single address is permanent. The password never appears in an
// error, even when the server quotes it back.
package notify
