package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// logFlushEvery is how late a log line may reach standard error.
const logFlushEvery = 100 * time.Millisecond

// bufferedLog gathers log lines and writes them out together: one write
// system call per line was a measurable share of the CPU under load. It
// writes when its buffer fills and every logFlushEvery; Close writes the
// rest. A crash loses at most that last moment's lines, never any state.
type bufferedLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func newBufferedLog(w io.Writer) *bufferedLog {
	b := &bufferedLog{w: bufio.NewWriterSize(w, 32<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushLoop()
	return b
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *bufferedLog) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.w.Flush()
}

func (b *bufferedLog) flushLoop() {
	defer close(b.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush()
		case <-b.stop:
			b.flush()
			return
		}
	}
}

// Close writes what is buffered and stops the flusher.
func (b *bufferedLog) Close() error {
	b.once.Do(func() { close(b.stop) })
	<-b.done
	return nil
}
