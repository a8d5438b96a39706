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
	"net/http"
	"strconv"
	"time"

	tokenpkg "verifier/token"
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
	Redeem(ctx context.Context, token string) (tokenpkg.Claims, error)
}

// SiteVerify answers host back ends checking a token with the API key.
type SiteVerify struct {
	Tokens       Redeemer
	APIKey       string
	WrongSecrets *verify.Limiter // per client address
	ClientAddr   func(*http.Request) string
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

func failure(status int, codes ...string) (int, siteverifyResult) {
	return status, siteverifyResult{ErrorCodes: codes}
}

const maxSiteverifyBody = 8 << 10

func (sv *SiteVerify) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, res := sv.check(r)
	if res.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(res.RetryAfter))
	}
	writeJSON(w, status, res)
}

func (sv *SiteVerify) check(r *http.Request) (int, siteverifyResult) {
	if wait, _ := sv.WrongSecrets.Wait(sv.subject(r), time.Now()); wait > 0 {
		status, res := failure(http.StatusTooManyRequests, errRateLimited)
		res.RetryAfter = *seconds(wait)
		return status, res
	}
	secret, token, err := readSiteverifyInput(r)
	if err != nil {
		return failure(http.StatusBadRequest, errBadRequest)
	}
	return sv.verify(r, secret, token)
}

func (sv *SiteVerify) subject(r *http.Request) verify.Subject {
	return verify.Subject{Client: sv.ClientAddr(r)}
}

// verify checks the secret, then redeems the token.
func (sv *SiteVerify) verify(r *http.Request, secret, token string) (int, siteverifyResult) {
	var missing []string
	if secret == "" {
		missing = append(missing, errMissingSecret)
	}
	if token == "" {
		missing = append(missing, errMissingToken)
	}
	if missing != nil {
		return failure(http.StatusBadRequest, missing...)
	}
	client := sv.ClientAddr(r)
	// Hashing first makes the comparison constant-time in the length too.
	given, want := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(sv.APIKey))
	if subtle.ConstantTimeCompare(given[:], want[:]) != 1 {
		sv.WrongSecrets.Take(sv.subject(r), time.Now())
		sv.Log.Warn("siteverify", "event", "siteverify", "reason", errInvalidSecret, "client", client)
		return failure(http.StatusUnauthorized, errInvalidSecret)
	}
	return sv.redeem(r.Context(), token, client)
}

// redeemErrors maps the token's refusals to siteverify's error codes.
var redeemErrors = []struct {
	err  error
	code string
}{
	{tokenpkg.ErrTokenInvalid, errInvalidToken},
	{tokenpkg.ErrTokenSpent, errSpentToken},
}

func (sv *SiteVerify) redeem(ctx context.Context, token, client string) (int, siteverifyResult) {
	claims, err := sv.Tokens.Redeem(ctx, token)
	if err != nil {
		for _, e := range redeemErrors {
			if errors.Is(err, e.err) {
				sv.Log.Info("siteverify", "event", "siteverify", "reason", e.code, "client", client)
				return failure(http.StatusOK, e.code)
			}
		}
		sv.Log.Error("siteverify", "event", "siteverify", "reason", errInternal, "err", err)
		return failure(http.StatusInternalServerError, errInternal)
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
