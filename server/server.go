// Package server is the HTTP surface: routes, the page, and the glue that
// turns WebSocket frames into calls on verify.Service and back.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"

	"verifier/hub"
	"verifier/verify"
)

// Frames is what the glue needs of the hub: fan-out by topic.
type Frames interface {
	Publish(topic string, frame []byte, exclude string)
}

// Publisher adapts the hub to verify.Publisher.
type Publisher struct{ Hub Frames }

// Publish implements verify.Publisher.
func (p Publisher) Publish(phone string, ev verify.Event, exceptConn string) {
	p.Hub.Publish(phone, encodeEvent(ev), exceptConn)
}

// Rules is what the glue needs of verify.Service.
type Rules interface {
	Normalize(phone string) (string, error)
	Register(ctx context.Context, who verify.Requester, phone string, reverify bool) (string, verify.Event)
	Verify(ctx context.Context, who verify.Requester, phone, code string) verify.Event
	Resume(ctx context.Context, phone string) (string, verify.Event)
}

var _ Rules = (*verify.Service)(nil)

// Frontend answers WebSocket frames. Set Rules before serving.
type Frontend struct {
	Rules Rules
	Log   *slog.Logger
	// HostOrigins are the allowed host sites' origins; a text asked for
	// from one names its host in the WebOTP line.
	HostOrigins []string
	Count       Counter // may be nil
}

// Counter counts frames in and answers out, for metrics.
type Counter interface {
	EventIn(event string)
	Answer(event, reason string)
}

type noCounter struct{}

func (noCounter) EventIn(string)        {}
func (noCounter) Answer(string, string) {}

func (f *Frontend) counter() Counter {
	if f.Count == nil {
		return noCounter{}
	}
	return f.Count
}

// HandleFrame implements hub.Handler.
func (f *Frontend) HandleFrame(ctx context.Context, c *hub.Conn, frame []byte) {
	count := f.counter()
	req, err := decodeFrame(frame)
	if err != nil {
		count.EventIn("bad_frame")
		count.Answer(verify.EventUpdate, verify.ReasonBadRequest)
		f.Log.Info("frame", "event", "bad_frame", "reason", verify.ReasonBadRequest, "conn", c.ID(), "err", err)
		c.Send(encodeEvent(verify.Update(verify.ReasonBadRequest, badRequestMessage(err))))
		return
	}
	count.EventIn(req.Event)
	// Subscribe before acting, so that nothing the action publishes (a dev
	// inbox text, another tab's verified) can be missed.
	if phone, err := f.Rules.Normalize(req.Phone); err == nil && req.Event != eventVerify {
		c.Subscribe(phone)
	}
	who := verify.Requester{ConnID: c.ID(), ClientAddr: c.ClientAddr(), Lang: req.Lang, Host: f.hostOf(c.Origin())}
	var answer verify.Event
	switch req.Event {
	case eventRegister:
		_, answer = f.Rules.Register(ctx, who, req.Phone, req.Reverify)
	case eventResume:
		_, answer = f.Rules.Resume(ctx, req.Phone)
	case eventVerify:
		answer = f.Rules.Verify(ctx, who, req.Phone, req.Code)
	}
	reason, _ := answer.Data["reason"].(string)
	count.Answer(answer.Name, reason)
	c.Send(encodeEvent(answer))
}

func (f *Frontend) hostOf(origin string) string {
	for _, o := range f.HostOrigins {
		if strings.EqualFold(o, origin) {
			if u, err := url.Parse(origin); err == nil {
				return u.Hostname()
			}
		}
	}
	return ""
}

func badRequestMessage(err error) string {
	if errors.Is(err, errBadFrame) {
		return "That request was not understood (" + err.Error() + ")."
	}
	return "That request was not understood."
}
