// Package sms carries texts: through Twilio, or, when no provider is
// configured, onto the console and the page's dev inbox.
package sms

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"verifier/channel"
	"verifier/verify"
)

// Console prints each message instead of sending it, for development, and
// pushes it to the pages on that number (the dev inbox).
type Console struct {
	mu    sync.Mutex
	out   io.Writer
	inbox verify.Publisher // nil: print only
}

var _ channel.Sender = (*Console)(nil)

// NewConsole prints to out and, if inbox is not nil, publishes each text.
func NewConsole(out io.Writer, inbox verify.Publisher) *Console {
	return &Console{out: out, inbox: inbox}
}

// Send writes "DEV SMS to <E.164>: <body>" as one line.
func (c *Console) Send(_ context.Context, to, body string) error {
	c.mu.Lock()
	_, err := fmt.Fprintf(c.out, "DEV SMS to %s: %s\n", to, OneLine(body))
	c.mu.Unlock()
	if err == nil && c.inbox != nil {
		c.inbox.Publish(to, verify.Outcome{Kind: verify.DevText, Phone: to, Body: body}, "")
	}
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
