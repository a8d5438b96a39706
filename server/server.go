// Package server is the HTTP surface: routes, the page, and the glue that
// turns WebSocket frames into calls on verify.Service and back.
package server

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"

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
	Register(ctx context.Context, who verify.Requester, phone string, reverify bool) (string, verify.Event)
	Verify(ctx context.Context, who verify.Requester, phone, code string) verify.Event
	Resume(ctx context.Context, phone string) (string, verify.Event)
}

var _ Rules = (*verify.Service)(nil)

// Frontend answers WebSocket frames. Set Rules before serving.
type Frontend struct {
	Rules Rules
	Log   *slog.Logger
}

// HandleFrame implements hub.Handler.
func (f *Frontend) HandleFrame(ctx context.Context, c *hub.Conn, frame []byte) {
	req, err := decodeFrame(frame)
	if err != nil {
		f.Log.Info("frame", "event", "bad_frame", "reason", verify.ReasonBadRequest, "conn", c.ID(), "err", err)
		c.Send(encodeEvent(verify.Update(verify.ReasonBadRequest, badRequestMessage(err))))
		return
	}
	who := verify.Requester{ConnID: c.ID(), ClientAddr: c.ClientAddr()}
	var phone string
	var answer verify.Event
	switch req.Event {
	case eventRegister:
		phone, answer = f.Rules.Register(ctx, who, req.Phone, req.Reverify)
	case eventResume:
		phone, answer = f.Rules.Resume(ctx, req.Phone)
	case eventVerify:
		answer = f.Rules.Verify(ctx, who, req.Phone, req.Code)
	}
	if phone != "" {
		c.Subscribe(phone)
	}
	c.Send(encodeEvent(answer))
}

func badRequestMessage(err error) string {
	if errors.Is(err, errBadFrame) {
		return "That request was not understood (" + err.Error() + ")."
	}
	return "That request was not understood."
}

// Deps are what the routes serve.
type Deps struct {
	Hub    http.Handler
	Assets fs.FS
	Health func() error
	Log    *slog.Logger
}

// NewHandler returns every route of the server.
func NewHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, d)
	return mux
}

func addRoutes(mux *http.ServeMux, d Deps) {
	files := http.FileServerFS(d.Assets)
	mux.Handle("GET /ws", d.Hub)
	mux.Handle("GET /{$}", pageHeaders(files))
	mux.Handle("GET /app.js", pageHeaders(files))
	mux.Handle("GET /style.css", pageHeaders(files))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Health(); err != nil {
			d.Log.Error("healthz", "err", err)
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

// pageHeaders keeps the page from loading anything foreign or being framed
// by strangers.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; "+
			"frame-ancestors 'self'; base-uri 'none'; form-action 'self'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
