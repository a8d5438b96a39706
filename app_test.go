package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// addApp verifies phone by text on c and enrols an authenticator app; it
// returns the app's key.
func addApp(t *testing.T, ts *testServer, c *client, phone string) string {
	t.Helper()
	c.register(phone)
	c.expect("code_generated", "")
	c.verify(phone, ts.codeFor(t, phone))
	c.expect("verified", "")
	c.send("app_add", map[string]any{"phone_number": phone})
	f := c.expect("app_setup", "")
	secret, _ := f.Data["secret"].(string)
	if qr, _ := f.Data["qr"].(string); !strings.HasPrefix(qr, "data:image/png;base64,") || secret == "" {
		t.Fatalf("app_setup %v: want a PNG QR code and the key", f.Data)
	}
	code, _ := totp.GenerateCode(secret, time.Now())
	c.send("app_confirm", map[string]any{"phone_number": phone, "code": code})
	c.expect("update", "app_added")
	return secret
}

func TestAnAuthenticatorAppVerifiesAndItsKeyIsNotInTheFile(t *testing.T) {
	needsFile(t)
	dbPath := filepath.Join(t.TempDir(), "app.db")
	ts := startServer(t, append([]string{"-db=" + dbPath}, noLimits...), nil)
	first := dial(t, ts.URL)
	secret := addApp(t, ts, first, phone)

	other := dial(t, ts.URL)
	other.send("app_add", map[string]any{"phone_number": phone})
	other.expect("update", "app_not_allowed") // not verified on this connection
	other.send("register", map[string]any{"phone_number": phone, "channel": "app", "reverify": true})
	if f := other.expect("code_generated", ""); f.Data["channel"] != "app" {
		t.Fatalf("code_generated %v", f.Data)
	}
	texts := len(ts.Twilio.Messages())
	next, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second)) // the enrolling code's step is spent
	other.verify(phone, next)
	other.expect("verified", "")
	if len(ts.Twilio.Messages()) != texts {
		t.Fatal("an app code sent a text")
	}
	other.send("app_remove", map[string]any{"phone_number": phone})
	other.expect("update", "app_not_allowed") // verified by the app itself
	first.expect("verified", "")              // the other tab's verification, without its token
	first.send("app_remove", map[string]any{"phone_number": phone})
	first.expect("update", "app_removed") // verified by text
	other.registerBy(phone, "app")
	other.expect("update", "app_not_set")

	ts.stop()
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the app's key is readable in the database file")
	}
}

func TestAnAppIsOnlyForNumbersThatHaveOne(t *testing.T) {
	ts := startServer(t, noLimits, nil)
	c := dial(t, ts.URL)
	c.registerBy(phone, "app")
	c.expect("update", "app_not_set")
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d texts for an app code", n)
	}
}

func TestAppFramesWithoutWhatTheyNeedAreBadRequests(t *testing.T) {
	ts := startServer(t, noLimits, nil)
	c := dial(t, ts.URL)
	for _, raw := range []string{
		`{"event":"app_add","data":{}}`,
		`{"event":"app_confirm","data":{"phone_number":"+14155552671"}}`,
		`{"event":"app_remove","data":{"phone_number":7}}`,
	} {
		c.sendRaw(raw)
		c.expect("update", "bad_request")
	}
	c.send("app_add", map[string]any{"phone_number": "12345"})
	c.expect("update", "invalid_phone")
}
