package faketwilio

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
	verifyv2 "github.com/twilio/twilio-go/rest/verify/v2"
)

// twilio-go refuses credentials that are not letters and digits.
const (
	verifySID, verifyToken = "AC00000000000000000000000000000001", "secrettoken123"
	verifyService          = "VA00000000000000000000000000000001"
	verifyPhone            = "+14155552671"
)

// toFake is the real twilio-go client with verify.twilio.com swapped for
// the fake's loopback address, so the test covers what twilio-go sends.
type toFake struct {
	*client.Client
	base *url.URL
}

func (c toFake) SendRequest(method, rawURL string, data url.Values,
	headers map[string]interface{}, body ...byte) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = c.base.Scheme, c.base.Host
	return c.Client.SendRequest(method, u.String(), data, headers, body...)
}

func newVerify(t *testing.T, fake *Server, token string) *verifyv2.ApiService {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	c := &client.Client{Credentials: client.NewCredentials(verifySID, token)}
	c.SetAccountSid(verifySID)
	return verifyv2.NewApiServiceWithClient(toFake{c, base})
}

func startVerify(api *verifyv2.ApiService, to, channel, locale string) (*verifyv2.VerifyV2Verification, error) {
	p := (&verifyv2.CreateVerificationParams{}).SetTo(to).SetChannel(channel)
	if locale != "" {
		p.SetLocale(locale)
	}
	return api.CreateVerification(verifyService, p)
}

func checkVerify(api *verifyv2.ApiService, to, code string) (*verifyv2.VerifyV2VerificationCheck, error) {
	return api.CreateVerificationCheck(verifyService, (&verifyv2.CreateVerificationCheckParams{}).SetTo(to).SetCode(code))
}

// wantRestError fails the test unless err is Twilio's error with this code and status.
func wantRestError(t *testing.T, err error, code, status int) {
	t.Helper()
	var te *client.TwilioRestError
	if !errors.As(err, &te) || te.Code != code || te.Status != status {
		t.Fatalf("want Twilio error %d (HTTP %d), got %v", code, status, err)
	}
}

func TestVerifyRecordsEachSendAsAMessage(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	next := fake.Next(verifyPhone)
	v, err := startVerify(api, verifyPhone, "sms", "")
	if err != nil {
		t.Fatal(err)
	}
	if *v.Status != "pending" || *v.Valid || !strings.HasPrefix(*v.Sid, "VE") || len(*v.Sid) != 34 ||
		*v.ServiceSid != verifyService || *v.AccountSid != verifySID || *v.To != verifyPhone || *v.Channel != "sms" ||
		len(*v.SendCodeAttempts) != 1 || v.DateCreated == nil || !strings.HasSuffix(*v.Url, *v.Sid) {
		t.Fatalf("verification %+v", v)
	}
	m := <-next
	code := fake.VerificationCode(verifyPhone)
	if len(code) != 6 || Code(m.Body) != code || m.Verify != "sms" || m.Twiml != "" || fake.LastCode(verifyPhone) != code {
		t.Fatalf("message %+v, code %q", m, code)
	}
}

func TestVerifyTextsFollowTheLocale(t *testing.T) {
	fake := New(verifySID, verifyToken)
	fake.VerifyCodeLength = 8
	api := newVerify(t, fake, verifyToken)
	for locale, want := range map[string]string{"": "Your verification code is ",
		"es": "Tu código de verificación es ", "fr-CA": "Votre code de vérification est "} {
		to := "+3361234567" + string(rune('0'+len(locale)))
		if _, err := startVerify(api, to, "sms", locale); err != nil {
			t.Fatal(err)
		}
		if body := fake.To(to)[0].Body; body != want+fake.VerificationCode(to) || len(Code(body)) != 8 {
			t.Errorf("locale %q: %q", locale, body)
		}
	}
}

func TestVerifyCheckApprovesOnceAndCountsWrongCodes(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	if _, err := startVerify(api, verifyPhone, "sms", ""); err != nil {
		t.Fatal(err)
	}
	code := fake.VerificationCode(verifyPhone)
	c, err := checkVerify(api, verifyPhone, wrongCode(code))
	if err != nil || *c.Status != "pending" || *c.Valid || fake.VerifyChecks(verifyPhone) != 1 {
		t.Fatalf("wrong code: %+v, %v", c, err)
	}
	c, err = checkVerify(api, verifyPhone, code)
	if err != nil || *c.Status != "approved" || !*c.Valid || *c.To != verifyPhone {
		t.Fatalf("right code: %+v, %v", c, err)
	}
	_, err = checkVerify(api, verifyPhone, code)
	wantRestError(t, err, 20404, 404)
	if fake.VerificationCode(verifyPhone) != "" {
		t.Fatal("an approved verification is still pending")
	}
}

// wrongCode is a code that differs from code in its first digit.
func wrongCode(code string) string {
	return string('0'+(code[0]-'0'+1)%10) + code[1:]
}

func TestVerifyCheckByVerificationSid(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	v, err := startVerify(api, verifyPhone, "whatsapp", "")
	if err != nil {
		t.Fatal(err)
	}
	p := (&verifyv2.CreateVerificationCheckParams{}).SetVerificationSid(*v.Sid).SetCode(fake.VerificationCode(verifyPhone))
	if c, err := api.CreateVerificationCheck(verifyService, p); err != nil || *c.Status != "approved" || *c.Channel != "whatsapp" {
		t.Fatalf("%+v, %v", c, err)
	}
}

func TestVerifyResendReusesThePendingCode(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	first, err := startVerify(api, verifyPhone, "sms", "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := startVerify(api, verifyPhone, "call", "")
	if err != nil {
		t.Fatal(err)
	}
	msgs := fake.To(verifyPhone)
	if *second.Sid != *first.Sid || *second.Channel != "call" || len(*second.SendCodeAttempts) != 2 ||
		fake.VerifySends(verifyPhone) != 2 || len(msgs) != 2 || Code(msgs[0].Body) != Code(msgs[1].Body) ||
		msgs[1].Verify != "call" || len(fake.Calls()) != 0 {
		t.Fatalf("first %+v, second %+v, messages %+v", first, second, msgs)
	}
}

func TestVerifyLimitsSends(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	for i := 0; i < 5; i++ {
		if _, err := startVerify(api, verifyPhone, "sms", ""); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	_, err := startVerify(api, verifyPhone, "sms", "")
	wantRestError(t, err, 60203, 429)
	if fake.VerifySends(verifyPhone) != 5 || len(fake.To(verifyPhone)) != 5 {
		t.Fatalf("sends %d, messages %d", fake.VerifySends(verifyPhone), len(fake.To(verifyPhone)))
	}
}

func TestVerifyLimitsWrongChecks(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	if _, err := startVerify(api, verifyPhone, "sms", ""); err != nil {
		t.Fatal(err)
	}
	code := fake.VerificationCode(verifyPhone)
	for i := 0; i < 5; i++ {
		if c, err := checkVerify(api, verifyPhone, wrongCode(code)); err != nil || *c.Status != "pending" {
			t.Fatalf("check %d: %+v, %v", i+1, c, err)
		}
	}
	_, err := checkVerify(api, verifyPhone, code) // even the right code, now
	wantRestError(t, err, 60202, 429)
	if fake.VerifyChecks(verifyPhone) != 5 {
		t.Fatalf("checks %d", fake.VerifyChecks(verifyPhone))
	}
}

func TestVerifyRefusesBadParameters(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	for _, c := range []struct{ to, channel string }{
		{"4155552671", "sms"}, {"+0155552671", "sms"}, {"+1415", "call"}, {"x@example.com", "sms"},
		{verifyPhone, "pigeon"}, {verifyPhone, "sna"}, {verifyPhone, ""},
	} {
		_, err := startVerify(api, c.to, c.channel, "")
		wantRestError(t, err, 60200, 400)
	}
	if _, err := startVerify(api, "x@example.com", "email", ""); err != nil {
		t.Fatal(err)
	}
	if len(fake.Messages()) != 1 {
		t.Fatalf("messages %+v", fake.Messages())
	}
}

func TestVerifyExpiry(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	first, err := startVerify(api, verifyPhone, "sms", "")
	if err != nil {
		t.Fatal(err)
	}
	code := fake.VerificationCode(verifyPhone)
	fake.ExpireVerification(verifyPhone)
	_, err = checkVerify(api, verifyPhone, code)
	wantRestError(t, err, 20404, 404)
	second, err := startVerify(api, verifyPhone, "sms", "")
	if err != nil || *second.Sid == *first.Sid || len(*second.SendCodeAttempts) != 1 {
		t.Fatalf("after expiry: %+v, %v", second, err)
	}
}

func TestVerifyTTL(t *testing.T) {
	fake := New(verifySID, verifyToken)
	fake.VerifyTTL = 50 * time.Millisecond
	api := newVerify(t, fake, verifyToken)
	if _, err := startVerify(api, verifyPhone, "sms", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if fake.VerificationCode(verifyPhone) != "" {
		t.Fatal("still pending after its TTL")
	}
}

func TestVerifyFailures(t *testing.T) {
	fake := New(verifySID, verifyToken)
	api := newVerify(t, fake, verifyToken)
	fake.SetFailure(&Failure{HTTPStatus: 503, Code: 20503})
	_, err := startVerify(api, verifyPhone, "sms", "")
	wantRestError(t, err, 20503, 503)
	_, err = checkVerify(api, verifyPhone, "123456")
	wantRestError(t, err, 20503, 503)

	fake.SetFailure(&Failure{HTTPStatus: 502})
	var te *client.TwilioRestError
	if _, err := startVerify(api, verifyPhone, "sms", ""); err == nil || errors.As(err, &te) {
		t.Fatalf("a non-JSON 502 gave %v", err)
	}
	if len(fake.Messages()) != 0 || fake.VerifySends(verifyPhone) != 0 {
		t.Fatal("a failed send was recorded")
	}

	fake.SetFailure(&Failure{HTTPStatus: 400, Code: 21211, To: "+14155550000"})
	if _, err := startVerify(api, verifyPhone, "sms", ""); err != nil {
		t.Fatalf("another number failed: %v", err)
	}
	_, err = startVerify(api, "+14155550000", "sms", "")
	wantRestError(t, err, 21211, 400)
}

func TestVerifyFailureDelayEndsWithTheRequest(t *testing.T) {
	fake := New(verifySID, verifyToken)
	fake.SetFailure(&Failure{HTTPStatus: 503, Code: 20503, Delay: time.Hour})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2/Services/"+verifyService+"/Verifications",
		strings.NewReader(url.Values{"To": {verifyPhone}, "Channel": {"sms"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(verifySID, verifyToken)
	if _, err := c.Do(req); err == nil {
		t.Fatal("a hanging Verify answered")
	}
}

func TestVerifyAuthAndUnknownPaths(t *testing.T) {
	fake := New(verifySID, verifyToken)
	_, err := startVerify(newVerify(t, fake, "wrongtoken1"), verifyPhone, "sms", "")
	wantRestError(t, err, 20003, 401)
	api := newVerify(t, fake, verifyToken)
	_, err = api.FetchVerification(verifyService, "VE00000000000000000000000000000001")
	wantRestError(t, err, 20404, 404)
	_, err = api.CreateVerification("MG1", (&verifyv2.CreateVerificationParams{}).SetTo(verifyPhone).SetChannel("sms"))
	wantRestError(t, err, 20404, 404)
}
