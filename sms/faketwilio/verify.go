package faketwilio

// Twilio Verify v2, as twilio-go's rest/verify/v2 calls it: Twilio keeps
// the code, so the fake does too, and tests read it from the Message it
// records for every send, or from VerificationCode.

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// verification is one pending Verify verification, keyed by its To.
type verification struct {
	sid, service, to, channel, code string
	created, expires                time.Time
	sends                           []sendAttempt
	checks                          int // wrong codes so far
}

type sendAttempt struct {
	sid, channel string
	at           time.Time
}

var (
	verifyPathRE = regexp.MustCompile(`^/v2/Services/(VA[0-9A-Za-z]+)/(Verifications|VerificationCheck)$`)
	e164RE       = regexp.MustCompile(`^\+[1-9]\d{6,14}$`)
	emailRE      = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// verifyChannels are the channels that send a code; sna and auto do not,
// so the fake refuses them like any unknown channel.
var verifyChannels = map[string]bool{"sms": true, "call": true, "whatsapp": true, "email": true}

// verifyTexts say the code first among its digits, so Code reads it.
var verifyTexts = map[string]string{
	"en": "Your verification code is %s",
	"es": "Tu código de verificación es %s",
	"fr": "Votre code de vérification est %s",
}

// serveVerify answers every /v2/ path: the two Verify endpoints, or the
// same 404 as any unknown path.
func (s *Server) serveVerify(w http.ResponseWriter, r *http.Request) {
	m := verifyPathRE.FindStringSubmatch(r.URL.Path)
	if !s.accepted(w, r, r.Method == http.MethodPost && m != nil) {
		return
	}
	if m[2] == "Verifications" {
		s.startVerification(w, r, m[1])
	} else {
		s.checkVerification(w, r, m[1])
	}
}

func (s *Server) startVerification(w http.ResponseWriter, r *http.Request, service string) {
	to, ch := r.PostForm.Get("To"), r.PostForm.Get("Channel")
	if !verifyChannels[ch] {
		writeError(w, http.StatusBadRequest, 60200, "Invalid parameter `Channel`: "+ch)
		return
	}
	if ch == "email" && !emailRE.MatchString(to) || ch != "email" && !e164RE.MatchString(to) {
		writeError(w, http.StatusBadRequest, 60200, "Invalid parameter `To`: "+to)
		return
	}
	if s.failed(w, r, to) {
		return
	}
	v, ok := s.send(service, to, ch)
	if !ok {
		writeError(w, http.StatusTooManyRequests, 60203, "Max send attempts reached")
		return
	}
	s.record(Message{To: to, Body: fmt.Sprintf(verifyText(r.PostForm.Get("Locale")), v.code), Verify: ch})
	writeVerification(w, http.StatusCreated, s.verificationJSON(v, "pending"))
}

// send reuses the pending verification for to, as Twilio does within its
// lifetime, or starts one; false when it was sent too often already. It
// returns a copy, safe to read without the lock.
func (s *Server) send(service, to, ch string) (verification, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.pending(to)
	if v == nil || v.service != service {
		now := time.Now()
		v = &verification{sid: "VE" + randomHex(16), service: service, to: to,
			code: randomDigits(orDefault(s.VerifyCodeLength, 6)), created: now,
			expires: now.Add(orDefault(s.VerifyTTL, 10*time.Minute))}
		s.verifications[to] = v
	}
	if len(v.sends) >= orDefault(s.VerifyMaxSends, 5) {
		return verification{}, false
	}
	v.channel = ch
	v.sends = append(v.sends, sendAttempt{sid: "VL" + randomHex(16), channel: ch, at: time.Now()})
	return v.snapshot(), true
}

// snapshot is a copy of v, safe to read once the lock is released.
func (v *verification) snapshot() verification {
	c := *v
	c.sends = append([]sendAttempt(nil), v.sends...)
	return c
}

func (s *Server) checkVerification(w http.ResponseWriter, r *http.Request, service string) {
	to, sid, code := r.PostForm.Get("To"), r.PostForm.Get("VerificationSid"), r.PostForm.Get("Code")
	if to == "" && sid == "" || code == "" {
		writeError(w, http.StatusBadRequest, 60200, "Invalid parameter: To or VerificationSid, and Code, are required")
		return
	}
	if to == "" {
		to = s.toOf(sid)
	}
	if s.failed(w, r, to) {
		return
	}
	v, status := s.check(service, to, sid, code)
	switch status {
	case "":
		writeError(w, http.StatusNotFound, 20404, "The requested resource /Services/"+service+"/VerificationCheck was not found")
	case "max":
		writeError(w, http.StatusTooManyRequests, 60202, "Max check attempts reached")
	default:
		body := s.verificationJSON(v, status)
		delete(body, "lookup")
		delete(body, "send_code_attempts")
		delete(body, "url")
		body["sna_attempts_error_codes"] = []any{}
		writeVerification(w, http.StatusOK, body)
	}
}

// check compares code with the pending one for to: "approved" (and the
// verification is gone, as a used code must be), "pending" (counted),
// "max" once too many were wrong, or "" when there is none.
func (s *Server) check(service, to, sid, code string) (verification, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.pending(to)
	if v == nil || v.service != service || sid != "" && v.sid != sid {
		return verification{}, ""
	}
	if v.checks >= orDefault(s.VerifyMaxChecks, 5) {
		return verification{}, "max"
	}
	// Constant time, so the fake never teaches a timing-leaky habit.
	if subtle.ConstantTimeCompare([]byte(code), []byte(v.code)) == 1 {
		delete(s.verifications, to)
		return v.snapshot(), "approved"
	}
	v.checks++
	return v.snapshot(), "pending"
}

// pending is the unexpired verification for to, or nil; it forgets an
// expired one, as Twilio does. Call it with s.mu held.
func (s *Server) pending(to string) *verification {
	if s.verifications == nil {
		s.verifications = map[string]*verification{} // New predates Verify
	}
	v := s.verifications[to]
	if v != nil && !time.Now().Before(v.expires) {
		delete(s.verifications, to)
		return nil
	}
	return v
}

// toOf is the To of the verification with sid, so a Failure's To filter
// works for checks by VerificationSid too.
func (s *Server) toOf(sid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for to, v := range s.verifications {
		if v.sid == sid {
			return to
		}
	}
	return ""
}

// failed answers as SetFailure said, exactly as ServeHTTP does for messages.
func (s *Server) failed(w http.ResponseWriter, r *http.Request, to string) bool {
	f := s.failure.Load()
	if f == nil || f.To != "" && f.To != to {
		return false
	}
	select {
	case <-time.After(f.Delay):
	case <-r.Context().Done():
		return true
	}
	if f.Code == 0 {
		w.WriteHeader(f.HTTPStatus)
		fmt.Fprint(w, "<html>upstream trouble</html>")
		return true
	}
	writeError(w, f.HTTPStatus, f.Code, fmt.Sprintf("error %d", f.Code))
	return true
}

func (s *Server) verificationJSON(v verification, status string) map[string]any {
	attempts := make([]any, 0, len(v.sends))
	for _, a := range v.sends {
		attempts = append(attempts, map[string]any{
			"attempt_sid": a.sid, "channel": a.channel, "time": a.at.UTC().Format(time.RFC3339)})
	}
	return map[string]any{
		"sid": v.sid, "service_sid": v.service, "account_sid": s.AccountSID, "to": v.to,
		"channel": v.channel, "status": status, "valid": status == "approved",
		"lookup": map[string]any{}, "amount": nil, "payee": nil, "send_code_attempts": attempts,
		"date_created": v.created.UTC().Format(time.RFC3339),
		"date_updated": time.Now().UTC().Format(time.RFC3339),
		"url":          "https://verify.twilio.com/v2/Services/" + v.service + "/Verifications/" + v.sid,
	}
}

func writeVerification(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// verifyText is the text for a Locale such as "es" or "fr-CA"; English
// for any other, as Twilio falls back.
func verifyText(locale string) string {
	lang, _, _ := strings.Cut(strings.ToLower(locale), "-")
	if t, ok := verifyTexts[lang]; ok {
		return t
	}
	return verifyTexts["en"]
}

func randomDigits(n int) string {
	b := make([]byte, n)
	for i := range b {
		d, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// ExpireVerification makes the pending verification for to expire now.
func (s *Server) ExpireVerification(to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.pending(to); v != nil {
		v.expires = time.Now()
	}
}

// VerificationCode is the pending code for to, or "".
func (s *Server) VerificationCode(to string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.pending(to); v != nil {
		return v.code
	}
	return ""
}

// VerifyChecks is how many wrong codes the pending verification for to got.
func (s *Server) VerifyChecks(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.pending(to); v != nil {
		return v.checks
	}
	return 0
}

// VerifySends is how many times the pending verification for to was sent.
func (s *Server) VerifySends(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.pending(to); v != nil {
		return len(v.sends)
	}
	return 0
}
