package main

import (
	"syscall"
	"testing"
)

func TestTheFileLimitIsRaisedToTheHardOneAndCapsConnections(t *testing.T) {
	got := raiseFileLimit()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip("no RLIMIT_NOFILE here:", err)
	}
	if got != lim.Cur || lim.Cur != lim.Max {
		t.Fatalf("raiseFileLimit = %d; soft %d, hard %d: want the soft limit raised to the hard one", got, lim.Cur, lim.Max)
	}
	for files, want := range map[uint64]int{20000: 19488, 1024: 512, 300: 64, 0: 15000, 1 << 30: 15000} {
		if c := connectionCap(files); c != want {
			t.Errorf("connectionCap(%d) = %d, want %d", files, c, want)
		}
	}
}
