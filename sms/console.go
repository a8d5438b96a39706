// Package sms holds the verify.Sender implementations: Twilio, and the
// console sender used when no provider is configured.
package sms

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"verifier/verify"
)

// Console prints each message instead of sending it, for development.
type Console struct {
	mu  sync.Mutex
	out io.Writer
}

var _ verify.Sender = (*Console)(nil)

// NewConsole prints to out.
func NewConsole(out io.Writer) *Console { return &Console{out: out} }

// Send writes "DEV SMS to <E.164>: <body>" as one line.
func (c *Console) Send(_ context.Context, m verify.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := fmt.Fprintf(c.out, "DEV SMS to %s: %s\n", m.To, OneLine(m.Body))
	return err
}

// OneLine joins a multi-line body with " | " so a log line stays one line.
func OneLine(body string) string {
	var parts []string
	for line := range strings.Lines(body) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, " | ")
}
