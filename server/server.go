// Package server is the HTTP surface: routes, the page, and the glue that
// turns WebSocket frames into calls on the rules and their outcomes back
// into frames, worded in the person's language.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"verifier/hub"
	"verifier/verify"
)

// Frames is what the glue needs of the hub: fan-out by topic, and frames
// for one connection.
type Frames interface {
	Publish(topic string, render hub.Render, exclude string)
	SendTo(conn string, render hub.Render)
}

// Publisher adapts the hub to verify.Publisher: each listener gets the
// outcome worded in its own language.
type Publisher struct {
	Hub   Frames
	Texts *Texts
}

// Publish implements verify.Publisher. A token never travels this way: it
// goes only to the connection that typed the code.
func (p Publisher) Publish(phone string, o verify.Outcome, exceptConn string) {
	o.Token = ""
	p.Hub.Publish(phone, p.renderer(o), exceptConn)
}

// Tell implements verify.Publisher.
func (p Publisher) Tell(conn string, o verify.Outcome) {
	p.Hub.SendTo(conn, p.renderer(o))
}

func (p Publisher) renderer(o verify.Outcome) hub.Render {
	return func(lang string) []byte {
		frame, _ := p.Texts.render(o, lang)
		return frame
	}
}

// Rules is what the glue needs of verify.Service.
type Rules interface {
	Normalize(phone string) (string, error)
	Register(ctx context.Context, who verify.Requester, reg verify.Registration) (verify.Outcome, error)
	Verify(ctx context.Context, who verify.Requester, phone, code string) (verify.Outcome, error)
	Resume(ctx context.Context, who verify.Requester, phone string) (verify.Outcome, error)
	AddApp(ctx context.Context, who verify.Requester, phone string) (verify.Outcome, error)
	ConfirmApp(ctx context.Context, who verify.Requester, phone, code string) (verify.Outcome, error)
	RemoveApp(ctx context.Context, who verify.Requester, phone string) (verify.Outcome, error)
}

var _ Rules = (*verify.Service)(nil)

// Frontend answers WebSocket frames.
type Frontend struct {
	Rules Rules
	Texts *Texts
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
	req, err := decodeFrame(frame)
	if req.Lang != "" {
		c.SetTag(f.Texts.Lang(req.Lang))
	}
	lang := f.Texts.Lang(c.Tag())
	if err != nil {
		f.counter().EventIn("bad_frame")
		f.Log.Info("frame", "event", "bad_frame", "reason", badRequest.reason, "conn", c.ID(), "err", err)
		f.send(c, f.Texts.renderForm(badRequest, lang, badDetail(err)), badRequest)
		return
	}
	f.counter().EventIn(req.Event)
	// Subscribe before acting, so that nothing the action publishes (a dev
	// inbox text, another tab's verified) can be missed.
	if phone, err := f.Rules.Normalize(req.Phone); err == nil && req.Event != eventVerify {
		c.Subscribe(phone)
	}
	who := verify.Requester{ConnID: c.ID(), ClientAddr: c.ClientAddr(), Lang: lang, Host: f.hostOf(c.Origin())}
	o, err := f.act(ctx, who, req)
	if err != nil {
		f.answerError(c, lang, req, err)
		return
	}
	frame, form := f.Texts.render(o, lang)
	f.send(c, frame, form)
}

func (f *Frontend) act(ctx context.Context, who verify.Requester, req request) (verify.Outcome, error) {
	switch req.Event {
	case eventRegister:
		return f.Rules.Register(ctx, who, verify.Registration{Phone: req.Phone, Reverify: req.Reverify, Channel: req.Channel})
	case eventResume:
		return f.Rules.Resume(ctx, who, req.Phone)
	case eventAppAdd:
		return f.Rules.AddApp(ctx, who, req.Phone)
	case eventAppConfirm:
		return f.Rules.ConfirmApp(ctx, who, req.Phone, req.Code)
	case eventAppRemove:
		return f.Rules.RemoveApp(ctx, who, req.Phone)
	default:
		return f.Rules.Verify(ctx, who, req.Phone, req.Code)
	}
}

// answerError tells the person what an error means for them; internal
// failures are logged and never shown.
func (f *Frontend) answerError(c *hub.Conn, lang string, req request, err error) {
	if errors.Is(err, verify.ErrUnknownChannel) {
		f.send(c, f.Texts.renderForm(badRequest, lang, "unknown channel "+strconv.Quote(truncate(req.Channel, 32))), badRequest)
		return
	}
	f.Log.Error(req.Event, "event", req.Event, "reason", internalError.reason, "err", err, "conn", c.ID())
	f.send(c, f.Texts.renderForm(internalError, lang, ""), internalError)
}

// send answers a frame; it runs on the connection's reader, as Reply must.
func (f *Frontend) send(c *hub.Conn, frame []byte, sent form) {
	f.counter().Answer(sent.event, sent.reason)
	c.Reply(frame)
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
