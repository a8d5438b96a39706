package channel

import (
	"context"
	"strings"
	"testing"

	"verifier/verify"
)

type recorder struct{ to, body, conn string }

func (r *recorder) Send(_ context.Context, t Text) error {
	r.to, r.body, r.conn = t.To, t.Body, t.Conn
	return nil
}

func TestSMSFollowsTheLanguageAndTheAskingHost(t *testing.T) {
	rec := &recorder{}
	sms, err := NewSMS(rec, map[string]string{"en": "Your verification code is: {code}",
		"es": "Tu código de verificación es: {code}"}, "verify.example.com")
	if err != nil {
		t.Fatal(err)
	}
	sms.Deliver(context.Background(), verify.Delivery{To: "+14155552671", Code: "123456", Lang: "es", Host: "shop.example", Conn: "c1"})
	if rec.to != "+14155552671" || rec.conn != "c1" || rec.body != "Tu código de verificación es: 123456\n\n@shop.example #123456" {
		t.Fatalf("to %q, body %q", rec.to, rec.body)
	}
	sms.Deliver(context.Background(), verify.Delivery{To: "+14155552671", Code: "654321", Lang: "xx"})
	if rec.body != "Your verification code is: 654321\n\n@verify.example.com #654321" {
		t.Fatalf("fallback body %q", rec.body)
	}
}

func TestSMSTextsMustHoldTheCode(t *testing.T) {
	if _, err := NewSMS(&recorder{}, map[string]string{"en": "hello"}, ""); err == nil || !strings.Contains(err.Error(), "{code}") {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewSMS(&recorder{}, map[string]string{"es": "{code}"}, ""); err == nil {
		t.Fatal("accepted texts without English")
	}
}
