package db

import (
	"testing"
	"time"
)

func gatherStore(wait time.Duration) *Store {
	return &Store{writes: make(chan *write), closing: make(chan struct{}), gatherWait: wait}
}

// Under load a commit waits for writes to share it, up to a full batch.
func TestUnderLoadACommitGathersTheWritesArrivingSoon(t *testing.T) {
	s := gatherStore(time.Hour) // only a full batch ends the wait
	go func() {
		for range maxBatch - 1 {
			s.writes <- &write{}
		}
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	if got := s.gather([]*write{{}}, true, timer); len(got) != maxBatch {
		t.Fatalf("gathered %d writes, want a full batch of %d", len(got), maxBatch)
	}
}

// gatherAwait runs gather in the background, lets more happen, and
// returns how many writes it gathered; it fails when gather never returns.
func gatherAwait(t *testing.T, s *Store, loaded bool, meanwhile func()) int {
	t.Helper()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	done := make(chan int)
	go func() { done <- len(s.gather([]*write{{}}, loaded, timer)) }()
	meanwhile()
	select {
	case n := <-done:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("gather never returned")
		return 0
	}
}

// At low load (the last commit carried one write) nothing waits.
func TestALoneWriteCommitsAtOnce(t *testing.T) {
	if n := gatherAwait(t, gatherStore(time.Hour), false, func() {}); n != 1 {
		t.Fatalf("batch of %d", n)
	}
}

// Close ends the wait: the gathered writes still commit.
func TestCloseEndsTheGathering(t *testing.T) {
	s := gatherStore(time.Hour)
	n := gatherAwait(t, s, true, func() {
		s.writes <- &write{}
		close(s.closing)
	})
	if n != 2 {
		t.Fatalf("batch of %d, want the 2 handed over", n)
	}
}
