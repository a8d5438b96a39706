package main

import (
	"testing"
)

// BenchmarkFlow is one person's whole flow on loopback, one after another:
// dial, register, the text through twilio-go to the fake Twilio, verify.
// ns/op is the latency of a complete flow, fsyncs included.
func BenchmarkFlow(b *testing.B) {
	ts := startServer(b, noLimits, nil)
	i := 0
	for b.Loop() {
		if err := flow(ts, numberN(i%9000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
