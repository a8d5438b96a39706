package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const inboundURL = "https://verify.example.com/twilio/inbound"

// textUs posts Twilio's incoming-message webhook, signed with token, and
// returns the status and the TwiML answer.
func textUs(t *testing.T, ts *testServer, from, body, token string) (int, string) {
	t.Helper()
	form := url.Values{"From": {from}, "To": {"+15005550006"}, "Body": {body}, "MessageSid": {"SM0001"}}
	return postTwilio(t, ts.URL+"/twilio/inbound", inboundURL, token, form)
}

func startInboundServer(t *testing.T, args ...string) *testServer {
	return startServer(t, append([]string{"-inbound", "-public-url=https://verify.example.com", "-code-ttl=1s"}, args...), nil)
}

// askToText registers phone by the inbound channel and returns the code
// the page is shown.
func askToText(t *testing.T, c *client, phone string) string {
	t.Helper()
	c.registerBy(phone, "inbound")
	f := c.expect("code_generated", "")
	code, _ := f.Data["code"].(string)
	if f.Data["channel"] != "inbound" || f.Data["send_to"] != "+15005550006" || len(code) != 6 {
		t.Fatalf("code_generated %v: want the code and our number", f.Data)
	}
	return code
}

func TestTextingUsTheCodeVerifiesThePageLive(t *testing.T) {
	ts := startInboundServer(t, "-code-ttl=10m", "-confirm-message=Verified, thanks!")
	c := dial(t, ts.URL)
	code := askToText(t, c, phone)
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d messages sent for a code the person texts us", n)
	}
	if status, _ := textUs(t, ts, phone, code, "not-the-token"); status != http.StatusForbidden {
		t.Fatalf("a forged webhook: %d, want 403", status)
	}
	if status, twiml := textUs(t, ts, numberN(3), code, fakeToken); status != 200 || strings.Contains(twiml, "<Message>") {
		t.Fatalf("the code from another phone: %d %q", status, twiml)
	}
	textUs(t, ts, phone, "it is "+wrongCode(code), fakeToken)
	c.expect("update", "wrong_code")
	status, twiml := textUs(t, ts, phone, code, fakeToken)
	if status != 200 || !strings.Contains(twiml, "<Message>Verified, thanks!</Message>") {
		t.Fatalf("the right code: %d %q", status, twiml)
	}
	if f := c.expect("verified", ""); f.Data["token"] == nil {
		t.Fatalf("verified without a token: %v", f.Data)
	}
	if _, twiml := textUs(t, ts, phone, code, fakeToken); strings.Contains(twiml, "<Message>") {
		t.Fatalf("a replay answered %q", twiml)
	}
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("the reply went as %d texts besides the TwiML", n)
	}
}

func TestATextedCodeThatExpiredDoesNotVerify(t *testing.T) {
	ts := startInboundServer(t)
	c := dial(t, ts.URL)
	code := askToText(t, c, phone)
	c.expect("reset", "expired") // pushed when it dies
	textUs(t, ts, phone, code, fakeToken)
	c.send("resume", map[string]any{"phone_number": phone})
	c.expect("reset", "not_requested")
}

func TestInboundNeedsItsSettings(t *testing.T) {
	ts := startServer(t, []string{"-public-url=https://verify.example.com"}, nil)
	c := dial(t, ts.URL)
	c.registerBy(phone, "inbound")
	c.expect("update", "bad_request")
	if status, _ := textUs(t, ts, phone, "123456", fakeToken); status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		t.Fatalf("/twilio/inbound without -inbound: %d", status)
	}
}

func TestMalformedInboundWebhooksChangeNothing(t *testing.T) {
	ts := startInboundServer(t, "-code-ttl=10m")
	c := dial(t, ts.URL)
	code := askToText(t, c, phone)
	for _, form := range []url.Values{
		{"To": {"+15005550006"}, "Body": {code}},               // no sender
		{"From": {"not a number"}, "Body": {code}},             // a sender that is no number
		{"From": {phone}, "Body": {strings.Repeat("9", 4000)}}, // no code in it
		{"From": {phone}, "Body": {"\x00\xff" + code[:3]}},     // half a code
		{"From": {phone + "," + phone}, "Body": {code}},        // two senders in one
	} {
		status, twiml := postTwilio(t, ts.URL+"/twilio/inbound", inboundURL, fakeToken, form)
		if status != http.StatusOK || strings.Contains(twiml, "<Message>") {
			t.Errorf("%v: %d %q, want an empty TwiML answer", form, status, twiml)
		}
	}
	// The two texts from the right phone without a code were two tries.
	c.expect("update", "wrong_code")
	c.expect("update", "wrong_code")
	c.send("resume", map[string]any{"phone_number": phone})
	c.expect("update", "code_pending") // nothing above verified or voided the code
	if _, twiml := textUs(t, ts, phone, code, fakeToken); !strings.Contains(twiml, "<Response") {
		t.Fatalf("the right code after the junk: %q", twiml)
	}
	c.expect("verified", "")
}
