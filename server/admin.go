package server

import (
	"crypto/subtle"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Admin is the operator's listener: the live backup (and the admin page).
// With a key, every request must carry it as a bearer token.
type Admin struct {
	Key    string                           // "" on loopback with no VERIFIER_ADMIN_KEY
	Backup func(w io.Writer) (int64, error) // a consistent copy of the live database
	Log    *slog.Logger
	Extra  func(mux *http.ServeMux) // more admin routes
}

// Handler returns the admin routes.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/backup", a.backup)
	if a.Extra != nil {
		a.Extra(mux)
	}
	return a.authorized(mux)
}

func (a *Admin) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if given == "" {
			given = r.URL.Query().Get("key") // the admin page's WebSocket cannot set headers
		}
		if a.Key != "" && subtle.ConstantTimeCompare([]byte(given), []byte(a.Key)) != 1 {
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
