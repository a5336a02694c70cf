// Package faultproxy is a small TCP proxy that injects network faults
// between a client and one target, for chaos tests: a bam node talks to its
// store through a Proxy, and the test switches the proxy's Mode to make the
// store vanish, go silent or become slow.
//
// A Proxy is in one Mode at a time. SetMode takes effect at once, on the
// connections already open and on the ones accepted afterwards:
//
//	Pass       bytes flow both ways, as they are read.
//	Slow       each chunk read, in either direction, is written onward only
//	           when the delay (SetDelay, 200ms by default) has passed since
//	           it was read. Order is kept: a direction reads its next
//	           chunk (up to 32 KiB) only once it has written the last, so
//	           Slow also limits each direction to about a chunk per delay.
//	Blackhole  a network partition: nothing is forwarded either way, not
//	           even a FIN or a reset. Connections stay open and the peers
//	           hear silence. A chunk read meanwhile is held, never delivered.
//	           A connection accepted while blackholed is held the same way,
//	           and the target is never dialled for it.
//	Cut        every open connection is closed at once, on both sides, with
//	           a reset (SO_LINGER 0); new connections are accepted and reset
//	           at once, as long as the mode is Cut (a client may see that as
//	           its connect failing with a reset).
//
// The state changes, and what each does to the connections already open:
//
//	Pass ⇄ Slow              kept; a chunk waiting out its delay goes at once on Pass
//	Pass, Slow → Blackhole   kept, and held: nothing more is forwarded
//	Blackhole → any other    all reset
//	any → Cut                all reset
//	Cut → any other          none is open
//
// Leaving Blackhole closes the connections it held rather than resuming
// them. A partition long enough to matter breaks the stream on a real
// network too (the peers' retransmissions give up, keepalives fail), and
// resuming with the held chunk dropped, or delivered late after the peers
// have timed out, would hand the protocol a corrupt stream. A client sees
// what it would see after a partition heals: its next read or write fails,
// and it must reconnect. Between Pass and Slow nothing is closed: a chunk
// waiting out its delay is sent as soon as the mode is Pass.
//
// BlackholeMidWrite arms a trip wire for "a link cut in the middle of a
// request": the next chunk of at least n bytes a client sends toward the
// target is forwarded in part (its first half), and the proxy switches to
// Blackhole at once, holding the rest. The target has then received the
// start of a large message and waits for its end, which never comes.
//
// When dialling the target fails, the client's connection is reset; Stats
// counts it. Close stops listening, resets every connection and waits for
// all the proxy's goroutines to end. The package never logs: what happened
// is in Stats.
package faultproxy
