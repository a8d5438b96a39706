package sms

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"verifier/channel"
	"verifier/sms/faketwilio"
	"verifier/verify"
)

const sid, token = "AC00000000000000000000000000000001", "secrettoken123"

func newTwilio(t *testing.T, fake *faketwilio.Server, tweak func(*TwilioConfig)) *Twilio {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := TwilioConfig{AccountSID: sid, AuthToken: token, From: "+15005550006", APIURL: srv.URL, Timeout: time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	tw, err := NewTwilio(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tw
}

const msgTo, msgBody = "+14155552671", "Your verification code is: 123456"

func TestTwilioSendsThroughTheConfiguredBaseURL(t *testing.T) {
	fake := faketwilio.New(sid, token)
	tw := newTwilio(t, fake, func(c *TwilioConfig) {
		c.StatusCallback = "https://verify.example.com/twilio/status"
		c.ValidFor = 10 * time.Minute
	})
	if err := tw.Send(context.Background(), channel.Text{To: msgTo, Body: msgBody}); err != nil {
		t.Fatal(err)
	}
	got := fake.Messages()
	if len(got) != 1 || got[0].To != msgTo || got[0].Body != msgBody || got[0].From != "+15005550006" ||
		got[0].StatusCallback != "https://verify.example.com/twilio/status" {
		t.Fatalf("fake got %+v", got)
	}
}

func TestTwilioMessagingService(t *testing.T) {
	fake := faketwilio.New(sid, token)
	tw := newTwilio(t, fake, func(c *TwilioConfig) { c.From = ""; c.MessagingServiceSID = "MG123" })
	if err := tw.Send(context.Background(), channel.Text{To: msgTo, Body: msgBody}); err != nil {
		t.Fatal(err)
	}
	if m := fake.Messages()[0]; m.MessagingServiceSID != "MG123" || m.From != "" {
		t.Fatalf("fake got %+v", m)
	}
}

// TestTwilioErrorsSayWhatTheyProve: a rejected number, a text that
// provably never left (nothing is counted for it), or an uncertain failure
// that may have sent it (the code stays valid and counted).
func TestTwilioErrorsSayWhatTheyProve(t *testing.T) {
	const rejected, notSent, uncertain = "rejected", "not sent", "uncertain"
	cases := []struct {
		name    string
		failure *faketwilio.Failure
		token   string
		want    string
	}{
		{"invalid number 21211", &faketwilio.Failure{HTTPStatus: 400, Code: 21211}, token, rejected},
		{"not a mobile 21614", &faketwilio.Failure{HTTPStatus: 400, Code: 21614}, token, rejected},
		{"refused request 21606", &faketwilio.Failure{HTTPStatus: 400, Code: 21606}, token, notSent},
		{"too many requests", &faketwilio.Failure{HTTPStatus: 429, Code: 20429}, token, notSent},
		{"wrong credentials", nil, "wrongtoken", notSent},
		{"server error with JSON", &faketwilio.Failure{HTTPStatus: 500, Code: 20500}, token, uncertain},
		{"server error without JSON", &faketwilio.Failure{HTTPStatus: 503}, token, uncertain},
		{"too slow", &faketwilio.Failure{HTTPStatus: 201, Code: 1, Delay: 3 * time.Second}, token, uncertain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := faketwilio.New(sid, token)
			fake.SetFailure(tc.failure)
			tw := newTwilio(t, fake, func(c *TwilioConfig) { c.AuthToken = tc.token })
			start := time.Now()
			err := tw.Send(context.Background(), channel.Text{To: msgTo, Body: msgBody})
			if got := proves(err); got != tc.want {
				t.Fatalf("err %v: %s, want %s", err, got, tc.want)
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Fatalf("took %v, the timeout is 1 s", d)
			}
		})
	}
}

func proves(err error) string {
	switch {
	case err == nil:
		return "no error"
	case errors.Is(err, verify.ErrRejectedNumber):
		return "rejected"
	case errors.Is(err, verify.ErrNotSent):
		return "not sent"
	}
	return "uncertain"
}

func TestTwilioDownProvesNothingWasSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	tw, err := NewTwilio(TwilioConfig{AccountSID: sid, AuthToken: token, From: "+15005550006", APIURL: url, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Send(context.Background(), channel.Text{To: msgTo, Body: msgBody}); proves(err) != "not sent" {
		t.Fatalf("err %v: %s, want not sent", err, proves(err))
	}
}

func TestTwilioConfigIsChecked(t *testing.T) {
	for _, cfg := range []TwilioConfig{
		{AuthToken: token, From: "+1"},
		{AccountSID: sid, From: "+1"},
		{AccountSID: sid, AuthToken: token},
		{AccountSID: sid, AuthToken: token, From: "+1", APIURL: "not a url"},
	} {
		if _, err := NewTwilio(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

func TestConsolePrintsOneLinePerMessage(t *testing.T) {
	var out bytes.Buffer
	c := NewConsole(&out, nil)
	c.Send(context.Background(), channel.Text{To: "+14155552671", Body: "Your verification code is: 123456\n\n@example.com #123456"})
	want := "DEV SMS to +14155552671: Your verification code is: 123456 | @example.com #123456\n"
	if out.String() != want {
		t.Fatalf("printed %q, want %q", out.String(), want)
	}
}

func TestTwilioPlacesACallThatSaysTheTwiML(t *testing.T) {
	fake := faketwilio.New(sid, token)
	tw := newTwilio(t, fake, nil)
	twiml := `<Response><Say language="en-US">Your verification code is 1, 2, 3, 4, 5, 6.</Say></Response>`
	if err := tw.Call(context.Background(), channel.Voice{To: msgTo, TwiML: twiml}); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 1 || calls[0].To != msgTo || calls[0].From != "+15005550006" || calls[0].Twiml != twiml ||
		faketwilio.Code(calls[0].Body) != "123456" {
		t.Fatalf("calls %+v", calls)
	}
	fake.SetFailure(&faketwilio.Failure{HTTPStatus: 400, Code: 21215}) // geo permissions: nothing placed
	if err := tw.Call(context.Background(), channel.Voice{To: msgTo, TwiML: twiml}); proves(err) != "not sent" {
		t.Fatalf("err %v: %s", err, proves(err))
	}
}

func TestConsolePrintsACallOnOneLine(t *testing.T) {
	var out strings.Builder
	c := NewConsole(&out, nil)
	c.Call(context.Background(), channel.Voice{To: "+14155552671", Spoken: "Your code is 1, 2, 3."})
	if out.String() != "DEV CALL to +14155552671: Your code is 1, 2, 3.\n" {
		t.Fatalf("printed %q", out.String())
	}
}
