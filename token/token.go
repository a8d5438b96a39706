// Package token signs proofs of verification for host back ends and redeems
// each once. Its format (HMAC-SHA256 over JSON claims) is its own business.
package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Token errors, as siteverify reports them.
var (
	ErrTokenInvalid = errors.New("invalid token")         // malformed, forged or signed with another key
	ErrTokenSpent   = errors.New("token expired or used") // valid once, for TokenTTL
)

// TokenTTL is how long a host has to check a token.
const TokenTTL = 5 * time.Minute

// SpentTokens remembers redeemed tokens until they expire.
type SpentTokens interface {
	// Spend records id as used until expires and reports whether it was
	// fresh; a second Spend of the same id reports false.
	Spend(ctx context.Context, id string, expires time.Time) (bool, error)
}

// Claims is what a token proves.
type Claims struct {
	Phone      string `json:"p"`
	VerifiedAt int64  `json:"v"` // unix seconds
	Expires    int64  `json:"x"` // unix seconds
	ID         string `json:"n"`
	Test       bool   `json:"t,omitempty"`
	Dev        bool   `json:"d,omitempty"` // issued with no SMS provider: the code was printed, not sent
}

// Tokens signs proofs of verification with HMAC-SHA256 and redeems each
// once.
type Tokens struct {
	key   []byte
	spent SpentTokens
	now   func() time.Time
	test  func(phone string) bool
	dev   bool
}

// Options tune NewTokens; the zero value is production with the real clock.
type Options struct {
	Now    func() time.Time  // nil: time.Now
	IsTest func(string) bool // marks the configured test numbers; nil: none
	Dev    bool              // development mode (no SMS provider): every token says so
}

// NewTokens signs with key (at least 32 bytes) and remembers spent tokens
// in spent.
func NewTokens(key []byte, spent SpentTokens, opts Options) (*Tokens, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("token key has %d bytes, want at least 32", len(key))
	}
	now, isTest := opts.Now, opts.IsTest
	if now == nil {
		now = time.Now
	}
	if isTest == nil {
		isTest = func(string) bool { return false }
	}
	return &Tokens{key: key, spent: spent, now: now, test: isTest, dev: opts.Dev}, nil
}

const tokenPrefix = "v1."

func (t *Tokens) sign(payload string) string {
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte(tokenPrefix + payload))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Issue mints a token proving that phone was verified at verifiedAt.
func (t *Tokens) Issue(phone string, verifiedAt time.Time) (string, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	claims, err := json.Marshal(Claims{
		Phone: phone, VerifiedAt: verifiedAt.Unix(), Expires: t.now().Add(TokenTTL).Unix(),
		ID: hex.EncodeToString(nonce), Test: t.test(phone), Dev: t.dev,
	})
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(claims)
	return tokenPrefix + payload + "." + t.sign(payload), nil
}

// maxTokenLen bounds what is parsed; real tokens are about 200 bytes.
const maxTokenLen = 1024

// Redeem checks the signature and expiry and spends the token: it succeeds
// once.
func (t *Tokens) Redeem(ctx context.Context, token string) (Claims, error) {
	var c Claims
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(token) > maxTokenLen {
		return c, ErrTokenInvalid
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(t.sign(payload))) {
		return c, ErrTokenInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.ID == "" || c.Phone == "" {
		return Claims{}, ErrTokenInvalid
	}
	expires := time.Unix(c.Expires, 0)
	if !t.now().Before(expires) {
		return Claims{}, ErrTokenSpent
	}
	fresh, err := t.spent.Spend(ctx, c.ID, expires)
	if err != nil {
		return Claims{}, err
	}
	if !fresh {
		return Claims{}, ErrTokenSpent
	}
	return c, nil
}
