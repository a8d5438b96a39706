package server

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"verifier/assets"
)

// Admin is the operator's listener: the live page, its numbers over a
// WebSocket, and the live backup. With a key, every request must carry it
// as a bearer token (or, for the page and its socket, ?key=).
type Admin struct {
	Key      string                           // "" on loopback with no VERIFIER_ADMIN_KEY
	Backup   func(w io.Writer) (int64, error) // a consistent copy of the live database
	Snapshot func() any                       // the live numbers, as JSON
	Assets   *assets.Bundle
	Log      *slog.Logger
}

// Handler returns the admin routes.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/backup", a.backup)
	mux.Handle("GET /admin", adminHeaders(static("text/html; charset=utf-8", a.Assets.Admin)))
	mux.Handle("GET /admin/admin.js", adminHeaders(static("text/javascript; charset=utf-8", a.Assets.AdminJS)))
	mux.Handle("GET /admin/admin.css", adminHeaders(static("text/css; charset=utf-8", a.Assets.AdminCSS)))
	mux.Handle("GET /favicon.svg", iconHeaders(static("image/svg+xml", a.Assets.Favicon)))
	mux.HandleFunc("GET /admin/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, a.Snapshot()) })
	mux.HandleFunc("GET /admin/ws", a.live)
	return a.authorized(mux)
}

// adminHeaders: the page loads only itself, and no one frames it.
func adminHeaders(next http.Handler) http.Handler { return ownPage("'none'", "'none'", next) }

// livePeriod is how often the admin page's numbers are looked at; they
// are pushed when they changed.
const livePeriod = time.Second

var adminUpgrader = websocket.Upgrader{
	CheckOrigin: func(r *http.Request) bool { // the admin page itself only
		u, err := url.Parse(r.Header.Get("Origin"))
		return err == nil && u.Host == r.Host
	},
}

// live pushes the numbers to the admin page as they change.
func (a *Admin) live(w http.ResponseWriter, r *http.Request) {
	ws, err := adminUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	gone := make(chan struct{})
	go func() { // the page says nothing: a failed read is its leaving
		defer close(gone)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(livePeriod)
	defer tick.Stop()
	var last []byte
	for {
		if frame, _ := json.Marshal(a.Snapshot()); !bytes.Equal(frame, last) {
			ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if ws.WriteMessage(websocket.TextMessage, frame) != nil {
				return
			}
			last = frame
		}
		select {
		case <-gone:
			return
		case <-r.Context().Done(): // the listener is stopping
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutting down"), time.Now().Add(time.Second))
			return
		case <-tick.C:
		}
	}
}

func (a *Admin) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The page's script and style hold no data, and the page cannot hand
		// them its ?key=.
		public := r.URL.Path == "/admin/admin.js" || r.URL.Path == "/admin/admin.css" || r.URL.Path == "/favicon.svg"
		given, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if given == "" {
			given = r.URL.Query().Get("key") // the admin page's WebSocket cannot set headers
		}
		if a.Key != "" && !public && subtle.ConstantTimeCompare([]byte(given), []byte(a.Key)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="verifier admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "admin key required"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// backup streams the database file; bbolt writes it from one read
// transaction, so it is consistent while writes go on.
func (a *Admin) backup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="verifier-`+time.Now().UTC().Format("20060102T150405Z")+`.db"`)
	n, err := a.Backup(w)
	if err != nil {
		// Headers are gone: a cut stream is how the client learns it failed.
		a.Log.Error("backup", "event", "backup", "reason", "backup_failed", "err", err, "bytes", n)
		panic(http.ErrAbortHandler)
	}
	a.Log.Info("backup", "event", "backup", "reason", "backup_served", "bytes", n)
}
