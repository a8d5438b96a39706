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
	errTooLarge      = "request-too-large"
	errInternal      = "internal-error"
)

// Redeemer checks and spends a proof token.
type Redeemer interface {
	Redeem(ctx context.Context, token string) (tokenpkg.Claims, error)
}

// SiteVerify answers host back ends checking a token with the API key.
type SiteVerify struct {
	Tokens Redeemer
	APIKey string
	// WrongSecrets counts wrong API keys per client address. Only wrong
	// keys count and only they are refused past the budget: the right key
	// works from any address, however many wrong ones it sent.
	WrongSecrets verify.RateLimiter
	ClientAddr   func(*http.Request) string
	Log          *slog.Logger
}

// siteverifyResult is the JSON answer.
type siteverifyResult struct {
	Success    bool     `json:"success"`
	Phone      string   `json:"phone_number,omitempty"`
	VerifiedAt string   `json:"verified_at,omitempty"`
	Test       bool     `json:"test,omitempty"`
	Dev        bool     `json:"dev,omitempty"` // issued with no SMS provider configured
	ErrorCodes []string `json:"error-codes,omitempty"`
	RetryAfter int      `json:"retry_after,omitempty"`
}

func failure(status int, codes ...string) (int, siteverifyResult) {
	return status, siteverifyResult{ErrorCodes: codes}
}

// ServeHTTP answers POST /api/siteverify. It bounds neither the body's size
// nor its read time: mount it behind limitBody, as addRoutes does.
func (sv *SiteVerify) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, res := sv.check(r)
	if res.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(res.RetryAfter))
	}
	writeJSON(w, status, res)
}

// siteverifyTooLarge answers a body over limitBody's limit in siteverify's
// own shape, {"success": false, "error-codes": ["request-too-large"]}
// with 413, since the contract says every refusal looks like that.
func siteverifyTooLarge(w http.ResponseWriter) {
	writeJSON(w, http.StatusRequestEntityTooLarge, siteverifyResult{ErrorCodes: []string{errTooLarge}})
}

func (sv *SiteVerify) check(r *http.Request) (int, siteverifyResult) {
	secret, token, err := readSiteverifyInput(r)
	if err != nil {
		return failure(http.StatusBadRequest, errBadRequest)
	}
	return sv.verify(r, secret, token)
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
		return sv.wrongSecret(client)
	}
	return sv.redeem(r.Context(), token, client)
}

// wrongSecret counts a wrong API key against its address and refuses it:
// 401 within the budget, 429 past it. Counting and checking are one Take,
// so parallel guesses cannot all pass before any is counted.
func (sv *SiteVerify) wrongSecret(client string) (int, siteverifyResult) {
	wait, _, ok := sv.WrongSecrets.Take(verify.Subject{Client: client}, time.Now())
	if !ok {
		sv.Log.Warn("siteverify", "event", "siteverify", "reason", errRateLimited, "client", client)
		status, res := failure(http.StatusTooManyRequests, errRateLimited)
		res.RetryAfter = *seconds(wait)
		return status, res
	}
	sv.Log.Warn("siteverify", "event", "siteverify", "reason", errInvalidSecret, "client", client)
	return failure(http.StatusUnauthorized, errInvalidSecret)
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
		Dev:        claims.Dev,
	}
}

// readSiteverifyInput takes a form or a JSON object. "response" is
// accepted for "token", as captcha clients send it. The body's size and
// read time are limitBody's business.
func readSiteverifyInput(r *http.Request) (secret, token string, err error) {
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
