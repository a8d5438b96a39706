package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"verifier/verify"
)

// Links are what the tap-to-verify routes need of the rules.
type Links interface {
	LinkInfo(ctx context.Context, who verify.Requester, id string) (verify.Outcome, error)
	Tap(ctx context.Context, who verify.Requester, id string) (verify.Outcome, error)
}

// TapPage serves the page a tap-to-verify link opens. GET only shows it
// (link-preview bots fetch links, and must verify nothing); the button's
// POST verifies, and only with the form's proof: an HMAC of the link and
// a random cookie set with the page, SameSite=Strict, so no other site
// can make a browser post it.
type TapPage struct {
	Links      Links
	Texts      *Texts
	Page       *template.Template
	Key        []byte // signs the form's proof
	Secure     bool   // the public URL is https: cookies say Secure
	SiteName   string // the server's own host, named when its own page asked
	ClientAddr func(*http.Request) string
	Log        *slog.Logger
}

// tapCookie carries the random half of the form's proof.
const tapCookie = "vf_tap"

// tapView is what the page template shows.
type tapView struct {
	Lang, State, Title, Message, Button, Action, Proof string
}

// tapState is how the page shows an outcome: its state, message key and
// HTTP status.
type tapState struct {
	state, message string
	status         int
}

var (
	tapStates = map[verify.Kind]tapState{
		verify.LinkLive:    {"live", "tap_question", http.StatusOK},
		verify.Verified:    {"verified", "tap_done", http.StatusOK},
		verify.LinkUsed:    {"used", "tap_used", http.StatusGone},
		verify.LinkInvalid: {"invalid", "tap_invalid", http.StatusNotFound},
		verify.Locked:      {"locked", "tap_locked", http.StatusTooManyRequests},
	}
	tapForbidden = tapState{"forbidden", "tap_forbidden", http.StatusForbidden}
)

func (t *TapPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, who := r.PathValue("id"), verify.Requester{ClientAddr: t.ClientAddr(r)}
	var o verify.Outcome
	var err error
	if r.Method == http.MethodPost {
		if !t.proofHolds(r, id) {
			t.show(w, r, id, tapForbidden, verify.Outcome{})
			return
		}
		o, err = t.Links.Tap(r.Context(), who, id)
	} else {
		o, err = t.Links.LinkInfo(r.Context(), who, id)
	}
	st, known := tapStates[o.Kind]
	if err != nil || !known {
		t.Log.Error("tap", "event", "tap", "reason", "internal_error", "err", err, "kind", o.Kind.String())
		http.Error(w, "Something went wrong on our side. Please try again.", http.StatusInternalServerError)
		return
	}
	t.show(w, r, id, st, o)
}

// show renders the page in the reader's language.
func (t *TapPage) show(w http.ResponseWriter, r *http.Request, id string, st tapState, o verify.Outcome) {
	lang := t.Texts.Lang(acceptLanguage(r.Header.Get("Accept-Language")))
	site := o.Site
	if site == "" {
		site = t.SiteName
	}
	fill := strings.NewReplacer("{site}", site, "{ending}", ending(o.Phone))
	v := tapView{Lang: lang, State: st.state, Title: t.Texts.word(lang, "tap_title"),
		Message: fill.Replace(t.Texts.word(lang, st.message)), Button: t.Texts.word(lang, "tap_button"),
		Action: "/v/" + url.PathEscape(id)}
	if st.state == "live" {
		v.Proof = t.newProof(w, id)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Referrer-Policy", "no-referrer") // the link is a secret: no page it leads to may learn it
	h.Set("Cache-Control", "no-store")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(st.status)
	if err := t.Page.Execute(w, v); err != nil {
		t.Log.Error("tap", "event", "tap", "reason", "render_failed", "err", err)
	}
}

// acceptLanguage is the first language an Accept-Language header names.
func acceptLanguage(h string) string {
	first, _, _ := strings.Cut(h, ",")
	first, _, _ = strings.Cut(first, ";")
	return languageTag(strings.TrimSpace(first))
}

// ending is what the page shows of a number: its last two digits.
func ending(phone string) string {
	if len(phone) < 4 {
		return ""
	}
	return "••" + phone[len(phone)-2:]
}

// newProof sets the cookie and returns the form's proof.
func (t *TapPage) newProof(w http.ResponseWriter, id string) string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	nonce := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: tapCookie, Value: nonce, Path: "/v/", HttpOnly: true,
		Secure: t.Secure, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return t.proof(id, nonce)
}

func (t *TapPage) proof(id, nonce string) string {
	mac := hmac.New(sha256.New, t.Key)
	mac.Write([]byte(id + "\x00" + nonce))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// proofHolds checks the form's proof against its cookie, and that the
// post comes from this server's own page. Under no-referrer a browser
// sends "Origin: null" for the page's own form: then Sec-Fetch-Site, where
// the browser sends it, must say same-origin.
func (t *TapPage) proofHolds(r *http.Request, id string) bool {
	switch origin := r.Header.Get("Origin"); origin {
	case "":
	case "null":
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			return false
		}
	default:
		if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
			return false
		}
	}
	c, err := r.Cookie(tapCookie)
	if err != nil || r.ParseForm() != nil {
		return false
	}
	return hmac.Equal([]byte(r.PostForm.Get("proof")), []byte(t.proof(id, c.Value)))
}
