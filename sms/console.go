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
	inbox Inbox // nil: print only
}

var (
	_ channel.Sender = (*Console)(nil)
	_ channel.Caller = (*Console)(nil)
)

// Inbox shows a printed text to the connection that asked for it.
type Inbox interface {
	Tell(conn string, o verify.Outcome)
}

// NewConsole prints to out and, if inbox is not nil, shows each text in
// the asking page's dev inbox.
func NewConsole(out io.Writer, inbox Inbox) *Console {
	return &Console{out: out, inbox: inbox}
}

// Send writes "DEV SMS to <E.164>: <body>" as one line.
func (c *Console) Send(_ context.Context, t channel.Text) error {
	return c.show("SMS", t.To, t.Body, t.Body, t.Conn)
}

// show prints "DEV <kind> to <E.164>: <line>" as one line and shows inbox
// in the asking page's dev inbox.
func (c *Console) show(kind, to, line, inbox, conn string) error {
	c.mu.Lock()
	_, err := fmt.Fprintf(c.out, "DEV %s to %s: %s\n", kind, to, OneLine(line))
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("console: %w: %w", verify.ErrNotSent, err)
	}
	if c.inbox != nil && conn != "" {
		c.inbox.Tell(conn, verify.Outcome{Kind: verify.DevText, Phone: to, Body: inbox})
	}
	return nil
}

// Call writes "DEV CALL to <E.164>: <what would be said>" as one line and
// shows it in the asking page's dev inbox.
func (c *Console) Call(_ context.Context, v channel.Voice) error {
	return c.show("CALL", v.To, v.Spoken, "📞 "+v.Spoken, v.Conn)
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
