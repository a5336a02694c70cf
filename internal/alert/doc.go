// Package alert evaluates the alerts of the deployed activities and
// delivers their firings: by exactly one node of the pool at a time, each
// firing recorded once in the store, each delivery at least once.
//
// # What an alert is
//
// An alert is declared with its activity (definition.Alert):
//
//	alerts:
//	  - name: LateApproval              # an instance alert
//	    where: state = 'active' AND Amount > 10000 AND Approved IS EMPTY
//	           AND Received IS NOT EMPTY AND NOT Received IN LAST 2h
//	    message: "{Customer}'s order {instance} ({Amount}) waits for approval"
//	    severity: warning
//	    subscribers:
//	      - {webhook: "https://ops.example.com/bam", secret_env: BAM_OPS_SECRET}
//	      - {email: buyers@example.com}
//	  - name: BusyCustomer              # an aggregate alert
//	    aggregation: ByCustomer
//	    state: active
//	    measure: orders
//	    above: 100
//
// Its condition holds for keys: an instance alert's keys are the ids of
// the instances its filter matches; an aggregate alert's, the cells of its
// aggregation (the state and the dimensions' values, as JSON) whose measure
// is above (below) the threshold. A firing is a key for which the condition
// became true: it stays open while the condition holds, and is cleared
// when it no longer does (or the alert is removed); the key fires again
// only after that. This is BAM's edge-triggered alert, per key.
//
// # Evaluation: a session like any other
//
// Evaluation is the one session of the built-in source "bam.alerts"
// (store.AlertsSource, kind alerts), which `bam deploy` adds with the first
// alert. The pool deals, hands over and takes it over like every session
// (package pool): one owner at a time, under a lease and an epoch. Its
// owner runs an Evaluator instead of a bus.Session:
//
//	every Interval (and at once when claimed):
//	  read      the deployed alerts; the open firings (store.AlertStore)
//	  evaluate  each alert: the keys its condition holds for now
//	            (a search of at most MaxKeys instances, after where the
//	            last round stopped, or a page of MaxKeys of the
//	            aggregation's cells)
//	  diff      fire  = keys now − keys open        (at most MaxFirings a round)
//	            clear = keys open − keys now, and the open firings of
//	                    alerts no longer deployed
//	  commit    one transaction, fenced like a batch (owner and epoch of the
//	            alerts session, store.AlertRound): the new firings, one
//	            delivery per firing and subscriber, the clearings. A unique
//	            index on the open firings' (activity, alert, key) makes a
//	            second open firing of a key impossible, whatever the caller
//	  deliver   the due deliveries (below)
//
// Why nothing is lost or repeated when the owner dies: the diff is against
// the firings the store holds, and only the owner can commit (the fence).
// A round that dies before its commit left nothing: the next owner finds
// the same keys not open and fires them. A round that committed left its
// firings and deliveries: the next owner finds them open (no second firing)
// and their deliveries pending (it delivers them). A node paused past its
// lease commits nothing (lease.Lease's deadline, then the fence).
//
// An instance alert's matches are read MaxKeys at a time, in id order,
// each round after the id where the last one stopped (from the first
// again after the last page), and a round that reaches MaxFirings makes
// the next read on from the last key it fired: every match is read, and
// fired, however many there are. A round judges only the ids it read:
// open firings of other ids are neither fired nor cleared by it. An
// aggregate alert's cells are read the same way, MaxKeys a round in their
// order (an offset: a cell added meanwhile is read in the next pass); the
// round that reads the last page also clears the open cells no page of
// the pass held (emptied: no instance is in them any more).
//
// # Delivery: at least once, with an id
//
// A delivery is a row (store.Delivery) made with its firing: an id that
// receivers see (X-Bam-Delivery, Message-ID), the subscriber's channel and
// target, a state (pending, delivered, failed), attempts, the next attempt's
// time and the last error. The owner of the alerts session sends the due
// ones after each round and whenever one comes due:
//
//	send       one attempt (package notify): a webhook POST signed with
//	           HMAC-SHA256 of the secret in the node's environment variable
//	           secret_env, or an email through the node's SMTP server
//	delivered  the receiver answered 2xx / 250: state delivered
//	retryable  a timeout, a 5xx, 408, 429, an SMTP 4xx, this node has no
//	           SMTP server or no secret: next attempt after a backoff
//	           (RetryBase doubling up to RetryMax, or the receiver's
//	           Retry-After), until GiveUpAfter past the firing: then failed
//	permanent  another 4xx, an SMTP 5xx: failed at once, with the reason
//
// A delivery sent but not recorded (the node died between the answer and
// the update) is sent again by the next owner under the same id: receivers
// drop repeats by it. Nothing else repeats one.
//
// # What this package does not do
//
// It does not decide who evaluates (package pool), keep the firings
// (package store) or speak HTTP and SMTP (package notify).
package alert
