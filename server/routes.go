package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"verifier/assets"
)

// Deps are what the routes serve.
type Deps struct {
	Hub           http.Handler
	OriginAllowed func(*http.Request) bool // the hub's check, for the widget
	Assets        *assets.Bundle
	SiteVerify    *SiteVerify
	Status        http.Handler // Twilio's delivery reports
	Inbound       http.Handler // Twilio's incoming texts; nil: not offered
	Tap           http.Handler // tap-to-verify links; nil: not offered
	Metrics       http.Handler
	Health        func() error
	Log           *slog.Logger
	// Demo serves the demo shop (/demo/embed, /demo.css): in development
	// mode or when asked for, never by default in production.
	Demo bool
}

// NewHandler returns every route of the server.
func NewHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, d)
	return mux
}

func addRoutes(mux *http.ServeMux, d Deps) {
	a := d.Assets
	mux.Handle("GET /ws", d.Hub)
	mux.Handle("GET /{$}", pageHeaders(static("text/html; charset=utf-8", a.Index)))
	mux.Handle("GET /app.js", pageHeaders(static("text/javascript; charset=utf-8", a.App)))
	mux.Handle("GET /style.css", pageHeaders(static("text/css; charset=utf-8", a.CSS)))
	mux.Handle("GET /widget.js", widgetHeaders(static("text/javascript; charset=utf-8", a.Widget)))
	favicon := iconHeaders(static("image/svg+xml", a.Favicon))
	mux.Handle("GET /favicon.svg", favicon)
	mux.Handle("GET /favicon.ico", favicon) // browsers ask for it where a page names none (the widget's hosts name theirs)
	mux.HandleFunc("GET /widget/config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Vary", "Origin")
		writeJSON(w, http.StatusOK, map[string]bool{"allowed": d.OriginAllowed(r)})
	})
	mux.Handle("POST /api/siteverify", limitBody(d.SiteVerify, maxBody, bodyReadTimeout, siteverifyTooLarge))
	mux.Handle("POST /twilio/status", limitBody(d.Status, maxBody, bodyReadTimeout, errorTooLarge))
	if d.Inbound != nil {
		mux.Handle("POST /twilio/inbound", limitBody(d.Inbound, maxBody, bodyReadTimeout, errorTooLarge))
	}
	if d.Tap != nil {
		mux.Handle("GET /v/{id}", d.Tap)
		mux.Handle("POST /v/{id}", limitBody(d.Tap, maxBody, bodyReadTimeout, errorTooLarge))
	}
	if d.Metrics != nil { // nil: -metrics-addr serves it elsewhere
		mux.Handle("GET /metrics", d.Metrics)
	}
	mux.Handle("GET /healthz", Healthz(d.Health, d.Log))
	if d.Demo {
		mux.Handle("GET /demo/embed", pageHeaders(static("text/html; charset=utf-8", a.Demo)))
		mux.Handle("GET /demo.css", pageHeaders(static("text/css; charset=utf-8", a.DemoCSS)))
		mux.Handle("POST /demo/embed", pageHeaders(limitBody(demoSignup(d.SiteVerify), maxBody, bodyReadTimeout, errorTooLarge)))
	}
}

// What a POST route reads: at most maxBody bytes, all of it within
// bodyReadTimeout of the handler starting.
const (
	maxBody         = 64 << 10
	bodyReadTimeout = 5 * time.Second
)

// limitBody reads a request's whole body before next runs, at most max
// bytes and within d, so a client that trickles a body is cut off instead
// of holding a goroutine and a socket. A larger body is answered by
// tooLarge (413); one not in within d gets 408 and the connection is
// closed. next then reads the body from memory.
func limitBody(next http.Handler, max int64, d time.Duration, tooLarge func(http.ResponseWriter)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// Fails only on a writer without a connection (a test recorder):
		// the size limit still holds there.
		rc.SetReadDeadline(time.Now().Add(d))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			tooLarge(w) // MaxBytesReader has marked the connection to close
			return
		case err != nil: // too slow, or the client went away mid-body
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusRequestTimeout, map[string]string{"error": "request body not received in time"})
			return
		}
		// The body is in: lift the deadline, so the handler's time (and the
		// server's watch for a client hanging up) is not cut short by it.
		rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// errorTooLarge is limitBody's 413 for routes without an answer shape of
// their own.
func errorTooLarge(w http.ResponseWriter) {
	writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body larger than 64 KiB"})
}

// Healthz answers 200 only while health (the database's ping) succeeds.
func Healthz(health func() error, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := health(); err != nil {
			log.Error("healthz", "event", "healthz", "reason", "database_unavailable", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// static serves fixed bytes, compressed once at start, with an ETag so
// browsers revalidate cheaply.
func static(contentType string, body []byte) http.Handler {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(body)
	zw.Close()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Vary", "Accept-Encoding")
		h.Set("ETag", etag)
		switch {
		case r.Header.Get("If-None-Match") == etag:
			w.WriteHeader(http.StatusNotModified)
		case strings.Contains(r.Header.Get("Accept-Encoding"), "gzip"):
			h.Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		default:
			w.Write(body)
		}
	})
}

// pageHeaders keeps the page from loading anything foreign or being framed
// by strangers.
func pageHeaders(next http.Handler) http.Handler { return ownPage("'self'", "'self'", next) }

// ownPage lets a page load only from this server, be framed by frames and
// post forms to forms ('none' or 'self'), and give away no referrer.
func ownPage(frames, forms string, next http.Handler) http.Handler {
	csp := "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors " + frames +
		"; base-uri 'none'; form-action " + forms + "; object-src 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// iconHeaders cache the icon for a day.
func iconHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// widgetHeaders let any page load the script (whether it may use the
// verifier is the WebSocket's and /widget/config's business) and cache it
// briefly, so a deploy reaches host pages within minutes.
func widgetHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

var demoResult = template.Must(template.New("result").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo shop: {{if .OK}}welcome{{else}}not verified{{end}}</title><link rel="stylesheet" href="/demo.css"></head>
<body><main class="shop">
<h1>{{if .OK}}Welcome, {{.Name}}!{{else}}We could not confirm your phone number{{end}}</h1>
<p class="hint">The back end posted the token to <code>/api/siteverify</code> with the API key and got:</p>
<pre>{{.Answer}}</pre>
<p><a href="/demo/embed">Back to the form</a></p>
</main></body></html>`))

// demoSignup is the demo shop's back end: it checks the widget's token the
// way a host's server would, through the same siteverify code.
func demoSignup(sv *SiteVerify) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		_, res := sv.verify(r, sv.APIKey, r.PostForm.Get("phone_verification_token"))
		answer, _ := json.MarshalIndent(res, "", "  ")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		demoResult.Execute(w, map[string]any{"OK": res.Success, "Name": r.PostForm.Get("name"), "Answer": string(answer)})
	})
}
