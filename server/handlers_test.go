package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"verifier/clientip"
	"verifier/sms"
	"verifier/sms/faketwilio"
	"verifier/token"
	"verifier/verify"
)

const (
	statusURL   = "https://verify.example.com/twilio/status"
	statusToken = "secrettoken123"
)

type recordingPub struct {
	mu  sync.Mutex
	got []verify.Outcome
	to  []string
}

// Delivered records the reports the rules would pass on.
func (p *recordingPub) Delivered(_ context.Context, o verify.Outcome) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, o)
	p.to = append(p.to, o.Phone)
	return nil
}

func newStatusHandler() (*DeliveryStatus, *recordingPub) {
	pub := &recordingPub{}
	return &DeliveryStatus{Check: sms.NewStatusValidator(statusToken), URL: statusURL, Reports: pub,
		ClientAddr: clientip.New(nil).Of, Log: slog.New(slog.DiscardHandler)}, pub
}

func postStatus(h http.Handler, form url.Values, signature string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/twilio/status", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signature != "" {
		r.Header.Set("X-Twilio-Signature", signature)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func statusForm(status string) url.Values {
	return url.Values{"MessageSid": {"SM123"}, "MessageStatus": {status}, "To": {"+14155552671"},
		"AccountSid": {"AC1"}, "ErrorCode": {"30003"}}
}

func TestDeliveryReportsBecomeUpdates(t *testing.T) {
	for status, kind := range map[string]verify.Kind{
		"sent": verify.DeliverySent, "delivered": verify.DeliveryDone,
		"undelivered": verify.DeliveryFailed, "failed": verify.DeliveryFailed,
	} {
		h, pub := newStatusHandler()
		form := statusForm(status)
		if w := postStatus(h, form, faketwilio.Sign(statusToken, statusURL, form)); w.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d %s", status, w.Code, w.Body)
		}
		if len(pub.got) != 1 || pub.to[0] != "+14155552671" || pub.got[0].Kind != kind || pub.got[0].Status != status {
			t.Fatalf("%s: published %v to %v, want one %s", status, pub.got, pub.to, kind)
		}
		if has := pub.got[0].ErrorCode != ""; has != (kind == verify.DeliveryFailed) {
			t.Fatalf("%s: error_code present = %v", status, has)
		}
	}
}

func TestIntermediateStatusesPushNothing(t *testing.T) {
	h, pub := newStatusHandler()
	for _, status := range []string{"queued", "accepted", "sending"} {
		form := statusForm(status)
		if w := postStatus(h, form, faketwilio.Sign(statusToken, statusURL, form)); w.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d", status, w.Code)
		}
	}
	if len(pub.got) != 0 {
		t.Fatalf("published %v", pub.got)
	}
}

func TestForgedDeliveryReportsAreRefused(t *testing.T) {
	form := statusForm("delivered")
	good := faketwilio.Sign(statusToken, statusURL, form)
	tampered := statusForm("delivered")
	tampered.Set("To", "+14155550000")
	cases := map[string]struct {
		form      url.Values
		signature string
	}{
		"missing signature":          {form, ""},
		"garbage signature":          {form, "bm90IGEgc2lnbmF0dXJl"},
		"signed with another token":  {form, faketwilio.Sign("othertoken", statusURL, form)},
		"signed for another URL":     {form, faketwilio.Sign(statusToken, "https://evil.example/twilio/status", form)},
		"body changed after signing": {tampered, good},
	}
	for name, tc := range cases {
		h, pub := newStatusHandler()
		w := postStatus(h, tc.form, tc.signature)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("%s: %d %s, want 403 with a JSON error", name, w.Code, w.Body)
		}
		if len(pub.got) != 0 {
			t.Errorf("%s: published %v", name, pub.got)
		}
	}
	// Without Twilio credentials nothing can be checked, so nothing is taken.
	h, pub := newStatusHandler()
	h.Check = nil
	if w := postStatus(h, form, good); w.Code != http.StatusForbidden || len(pub.got) != 0 {
		t.Fatalf("unconfigured: %d, published %v", w.Code, pub.got)
	}
}

func FuzzTwilioStatus(f *testing.F) {
	f.Add("MessageStatus=delivered&To=%2B14155552671&MessageSid=SM1", true)
	f.Add("MessageStatus=failed&To=%2B14155552671&ErrorCode=30005", true)
	f.Add("MessageStatus=delivered&To=14155552671", true)
	f.Add("MessageStatus=&To=", false)
	f.Add("%zz=1", true)
	f.Add(strings.Repeat("a=b&", 5000), true)
	f.Fuzz(func(t *testing.T, body string, sign bool) {
		h, pub := newStatusHandler()
		r := httptest.NewRequest("POST", "/twilio/status", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		form, parseErr := url.ParseQuery(body)
		if sign && parseErr == nil {
			r.Header.Set("X-Twilio-Signature", faketwilio.Sign(statusToken, statusURL, form))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusNoContent:
			if !sign {
				t.Fatal("accepted an unsigned report")
			}
		case http.StatusBadRequest, http.StatusForbidden:
			if len(pub.got) != 0 {
				t.Fatalf("%d but published %v", w.Code, pub.got)
			}
			var e map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Fatalf("%d without a JSON error: %q", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
		for i, to := range pub.to {
			if k := pub.got[i].Kind; !verify.IsE164(to) || k < verify.DeliverySent || k > verify.DeliveryFailed {
				t.Fatalf("published %v to %q", pub.got[i], to)
			}
		}
	})
}

// memSpent is an in-memory token.SpentTokens.
type memSpent struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (m *memSpent) Spend(_ context.Context, id string, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids[id] {
		return false, nil
	}
	m.ids[id] = true
	return true, nil
}

func FuzzSiteverify(f *testing.F) {
	tokens, err := token.NewTokens([]byte("0123456789abcdef0123456789abcdef"), &memSpent{ids: map[string]bool{}}, token.Options{})
	if err != nil {
		f.Fatal(err)
	}
	good, err := tokens.Issue("+14155552671", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add("application/x-www-form-urlencoded", "secret=key&token="+url.QueryEscape(good))
	f.Add("application/json", `{"secret":"key","response":"`+good+`"}`)
	f.Add("application/json", `{"secret":"key","token":`)
	f.Add("application/json", `{"secret":["key"],"token":1}`)
	f.Add("text/plain", "secret=key&token=v1.e30.AAAA")
	f.Add("application/x-www-form-urlencoded", "secret=wrong&token=x")
	f.Add("application/x-www-form-urlencoded; charset=utf-8", "secret=&token=")
	f.Add("multipart/form-data; boundary=x", "--x--")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		sv := &SiteVerify{Tokens: tokens, APIKey: "key", Log: slog.New(slog.DiscardHandler),
			ClientAddr:   clientip.New(nil).Of,
			WrongSecrets: verify.NewLimiter(verify.Limit{Name: "wrong_secret", Rate: verify.Rate{N: 1000, Per: time.Minute}, Key: verify.ByClient})}
		r := httptest.NewRequest("POST", "/api/siteverify", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		sv.ServeHTTP(w, r)
		var res siteverifyResult
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatalf("%d: not JSON: %q", w.Code, w.Body)
		}
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized:
		default:
			t.Fatalf("status %d %q", w.Code, w.Body)
		}
		if res.Success != (len(res.ErrorCodes) == 0) || res.Success && (w.Code != http.StatusOK || res.Phone != "+14155552671") {
			t.Fatalf("%d %+v", w.Code, res)
		}
	})
}

// TestWhatsAppReportsNameTheNumberAndJunkIsRefused: the signature covers
// the form as Twilio sent it ("whatsapp:+1..."); the report names E.164,
// and a To that is no number after the prefix is a 400.
func TestWhatsAppReportsNameTheNumberAndJunkIsRefused(t *testing.T) {
	h, pub := newStatusHandler()
	form := statusForm("delivered")
	form.Set("To", "whatsapp:+14155552671")
	if w := postStatus(h, form, faketwilio.Sign(statusToken, statusURL, form)); w.Code != http.StatusNoContent {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	if len(pub.to) != 1 || pub.to[0] != "+14155552671" {
		t.Fatalf("reported to %v", pub.to)
	}
	for _, to := range []string{"whatsapp:", "whatsapp:junk", "whatsapp:whatsapp:+14155552671", "WHATSAPP:+14155552671"} {
		h, pub := newStatusHandler()
		bad := statusForm("delivered")
		bad.Set("To", to)
		if w := postStatus(h, bad, faketwilio.Sign(statusToken, statusURL, bad)); w.Code != http.StatusBadRequest || len(pub.got) != 0 {
			t.Errorf("To %q: %d, reported %v; want 400 and nothing", to, w.Code, pub.got)
		}
	}
}
