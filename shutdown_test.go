package main

import (
	"runtime"
	"strings"
	"testing"
)

// running counts goroutines whose stack holds each marker.
func running(markers ...string) map[string]int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	counts := map[string]int{}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for _, m := range markers {
			if strings.Contains(g, m) {
				counts[m]++
			}
		}
	}
	return counts
}

// TestNothingOfTheServerRunsOnceRunReturns: by the time run returns, every
// socket's reader, the expiry sweeper, the spent-token janitor and the
// store's writer have ended, so nothing can write to a closed database.
func TestNothingOfTheServerRunsOnceRunReturns(t *testing.T) {
	needsFile(t)
	markers := []string{"verifier/hub.(*Conn).readPump", "(*app).every", "verifier/db.(*Store).writer",
		"verifier/hub.(*Hub).pinger"}
	before := running(markers...)
	ts := startServer(t, nil, nil)
	for i := range 5 {
		c := dial(t, ts.URL)
		c.register(numberN(i))
		c.expect("code_generated", "")
	}
	during := running(markers...)
	for _, m := range markers {
		if during[m] <= before[m] {
			t.Fatalf("%s is not running while the server serves (%d before, %d during): the markers are stale", m, before[m], during[m])
		}
	}
	ts.stop()
	after := running(markers...)
	for _, m := range markers {
		if after[m] > before[m] {
			t.Errorf("%d of %s still running after run returned", after[m]-before[m], m)
		}
	}
}
