package main

import (
	"strings"
	"sync"
	"testing"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBufferedLogKeepsEveryLineWholeAndWritesTheRestOnClose(t *testing.T) {
	out := &syncBuffer{}
	logs := newBufferedLog(out)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				logs.Write([]byte(strings.Repeat(string(rune('a'+g)), 40+i%7) + "\n"))
			}
		})
	}
	wg.Wait()
	logs.Close()
	logs.Close() // twice is fine
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	for _, l := range lines {
		if strings.Trim(l, l[:1]) != "" {
			t.Fatalf("a line was torn: %q", l)
		}
	}
}
