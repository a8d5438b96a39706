package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"verifier/verify"
)

// Error codes of /api/siteverify, as captcha services name them.
const (
	errMissingSecret = "missing-input-secret"
	errInvalidSecret = "invalid-input-secret"
	errMissingToken  = "missing-input-response"
	errInvalidToken  = "invalid-input-response"
	errSpentToken    = "timeout-or-duplicate"
	errBadRequest    = "bad-request"
	errRateLimited   = "rate-limited"
	errInternal      = "internal-error"
)

// Redeemer checks and spends a proof token.
type Redeemer interface {
	Redeem(ctx context.Context, token string) (verify.Claims, error)
}

// SiteVerify answers host back ends checking a token with the API key.
type SiteVerify struct {
	Tokens       Redeemer
	APIKey       string
	WrongSecrets *verify.WindowLimiter // per client address
	Log          *slog.Logger
}

// siteverifyResult is the JSON answer.
type siteverifyResult struct {
	Success    bool     `json:"success"`
	Phone      string   `json:"phone_number,omitempty"`
	VerifiedAt string   `json:"verified_at,omitempty"`
	Test       bool     `json:"test,omitempty"`
	ErrorCodes []string `json:"error-codes,omitempty"`
	RetryAfter int      `json:"retry_after,omitempty"`
}

const maxSiteverifyBody = 8 << 10

func (sv *SiteVerify) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, res := sv.check(r)
	writeJSON(w, status, res)
}

func (sv *SiteVerify) check(r *http.Request) (int, siteverifyResult) {
	fail := func(status int, codes ...string) (int, siteverifyResult) {
		return status, siteverifyResult{ErrorCodes: codes}
	}
	client := clientIP(r)
	if wait := sv.WrongSecrets.Wait(client); wait > 0 {
		status, res := fail(http.StatusTooManyRequests, errRateLimited)
		res.RetryAfter = int(wait.Seconds()) + 1
		return status, res
	}
	secret, token, err := readSiteverifyInput(r)
	if err != nil {
		return fail(http.StatusBadRequest, errBadRequest)
	}
	return sv.verify(r, secret, token)
}

// verify checks the secret, then redeems the token.
func (sv *SiteVerify) verify(r *http.Request, secret, token string) (int, siteverifyResult) {
	fail := func(status int, codes ...string) (int, siteverifyResult) {
		return status, siteverifyResult{ErrorCodes: codes}
	}
	client := clientIP(r)
	var missing []string
	if secret == "" {
		missing = append(missing, errMissingSecret)
	}
	if token == "" {
		missing = append(missing, errMissingToken)
	}
	if missing != nil {
		return fail(http.StatusBadRequest, missing...)
	}
	// Hashing first makes the comparison constant-time in the length too.
	given, want := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(sv.APIKey))
	if subtle.ConstantTimeCompare(given[:], want[:]) != 1 {
		sv.WrongSecrets.Take(client)
		sv.Log.Warn("siteverify", "event", "siteverify", "reason", errInvalidSecret, "client", client)
		return fail(http.StatusUnauthorized, errInvalidSecret)
	}
	claims, err := sv.Tokens.Redeem(r.Context(), token)
	switch {
	case errors.Is(err, verify.ErrTokenInvalid):
		sv.Log.Info("siteverify", "event", "siteverify", "reason", errInvalidToken, "client", client)
		return fail(http.StatusOK, errInvalidToken)
	case errors.Is(err, verify.ErrTokenSpent):
		sv.Log.Info("siteverify", "event", "siteverify", "reason", errSpentToken, "client", client)
		return fail(http.StatusOK, errSpentToken)
	case err != nil:
		sv.Log.Error("siteverify", "event", "siteverify", "reason", errInternal, "err", err)
		return fail(http.StatusInternalServerError, errInternal)
	}
	sv.Log.Info("siteverify", "event", "siteverify", "reason", "success", "phone", verify.MaskPhone(claims.Phone))
	return http.StatusOK, siteverifyResult{
		Success:    true,
		Phone:      claims.Phone,
		VerifiedAt: time.Unix(claims.VerifiedAt, 0).UTC().Format(time.RFC3339),
		Test:       claims.Test,
	}
}

// readSiteverifyInput takes a form or a JSON object. "response" is
// accepted for "token", as captcha clients send it.
func readSiteverifyInput(r *http.Request) (secret, token string, err error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxSiteverifyBody)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		var in struct {
			Secret   string `json:"secret"`
			Token    string `json:"token"`
			Response string `json:"response"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return "", "", err
		}
		return in.Secret, cmp.Or(in.Token, in.Response), nil
	}
	if err := r.ParseForm(); err != nil {
		return "", "", err
	}
	return r.PostForm.Get("secret"), cmp.Or(r.PostForm.Get("token"), r.PostForm.Get("response")), nil
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if res, ok := v.(siteverifyResult); ok && res.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(res.RetryAfter))
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
