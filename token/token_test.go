package token

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

type memSpent struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func (m *memSpent) Spend(_ context.Context, id string, expires time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ids[id]; ok {
		return false, nil
	}
	m.ids[id] = expires
	return true, nil
}

func newTestTokens(t *testing.T, key []byte, c *clock) *Tokens {
	t.Helper()
	tok, err := NewTokens(key, &memSpent{ids: map[string]time.Time{}}, Options{Now: c.Now,
		IsTest: func(p string) bool { return p == "+15555550100" }})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var key1, key2 = bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)

func TestTokenIsValidOnceAndCarriesTheNumber(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	tokens := newTestTokens(t, key1, c)
	tok, err := tokens.Issue(phone, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	claims, err := tokens.Redeem(context.Background(), tok)
	if err != nil || claims.Phone != phone || claims.VerifiedAt != c.Now().Unix() || claims.Test || claims.Dev {
		t.Fatalf("redeem: %+v, %v", claims, err)
	}
	if _, err := tokens.Redeem(context.Background(), tok); !errors.Is(err, ErrTokenSpent) {
		t.Fatalf("replay: %v, want ErrTokenSpent", err)
	}
}

func TestTokenExpiresAfterFiveMinutes(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	tokens := newTestTokens(t, key1, c)
	tok, _ := tokens.Issue(phone, c.Now())
	c.Advance(TokenTTL)
	if _, err := tokens.Redeem(context.Background(), tok); !errors.Is(err, ErrTokenSpent) {
		t.Fatalf("expired: %v, want ErrTokenSpent", err)
	}
}

func TestForgedTokensAreInvalid(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	tokens := newTestTokens(t, key1, c)
	tok, _ := tokens.Issue(phone, c.Now())
	other, _ := newTestTokens(t, key2, c).Issue(phone, c.Now())
	payload, sig, _ := strings.Cut(strings.TrimPrefix(tok, tokenPrefix), ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	otherNumber := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte(phone), []byte("+14155550000"), 1))
	flipped := []byte(sig)
	flipped[3] ^= 1
	for name, forged := range map[string]string{
		"signed with another key": other,
		"number changed":          tokenPrefix + otherNumber + "." + sig,
		"signature changed":       tokenPrefix + payload + "." + string(flipped),
		"no signature":            tokenPrefix + payload,
		"other version":           "v2." + payload + "." + sig,
		"empty":                   "",
		"garbage":                 "not a token",
		"huge":                    tokenPrefix + strings.Repeat("A", 10000) + "." + sig,
	} {
		if _, err := tokens.Redeem(context.Background(), forged); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("%s: %v, want ErrTokenInvalid", name, err)
		}
	}
	// The forgeries spent nothing: the real token still works.
	if _, err := tokens.Redeem(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

func TestTokensMarkTestNumbers(t *testing.T) {
	c := &clock{now: time.Now()}
	tokens := newTestTokens(t, key1, c)
	tok, _ := tokens.Issue("+15555550100", c.Now())
	if claims, err := tokens.Redeem(context.Background(), tok); err != nil || !claims.Test {
		t.Fatalf("%+v, %v", claims, err)
	}
}

func TestTokensIssuedInDevelopmentModeSayDev(t *testing.T) {
	dev, err := NewTokens(key1, &memSpent{ids: map[string]time.Time{}}, Options{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := dev.Issue(phone, time.Now())
	if claims, err := dev.Redeem(context.Background(), tok); err != nil || !claims.Dev || claims.Test {
		t.Fatalf("dev token: %+v, %v", claims, err)
	}
	// The claim is signed: a production token cannot be turned into a dev
	// one or back without the key, and a production Tokens redeems a dev
	// token with its mark intact.
	prod := newTestTokens(t, key1, &clock{now: time.Now()})
	tok, _ = dev.Issue(phone, time.Now())
	if claims, err := prod.Redeem(context.Background(), tok); err != nil || !claims.Dev {
		t.Fatalf("dev token redeemed by a production Tokens: %+v, %v", claims, err)
	}
}

func TestShortKeysAreRefused(t *testing.T) {
	if _, err := NewTokens([]byte("short"), &memSpent{}, Options{}); err == nil {
		t.Fatal("accepted a 5-byte key")
	}
}

// clock is a settable time source.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

const phone = "+14155552671"
