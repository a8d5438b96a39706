package hub

import "testing"

// BenchmarkAFreshReaderRunsADeepHandler is what roomForHandlers is for: a
// new goroutine (a new connection's reader) runs a handler about as deep
// as a flow's, 40 frames of some 250 bytes. Without the room its stack
// doubles three times on the way down, each copy walking every frame.
func BenchmarkAFreshReaderRunsADeepHandler(b *testing.B) {
	for _, bc := range []struct {
		name string
		grow bool
	}{{"small stack", false}, {"room made first", true}} {
		b.Run(bc.name, func(b *testing.B) {
			done := make(chan int)
			for b.Loop() {
				go func() {
					if bc.grow {
						roomForHandlers()
					}
					done <- deep(40)
				}()
				<-done
			}
		})
	}
}

//go:noinline
func deep(n int) int {
	var frame [32]int
	frame[n%32] = n
	if n == 0 {
		return frame[0]
	}
	return deep(n-1) + frame[n%32]
}
