package sms

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

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
	if err := tw.Send(context.Background(), msgTo, msgBody); err != nil {
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
	if err := tw.Send(context.Background(), msgTo, msgBody); err != nil {
		t.Fatal(err)
	}
	if m := fake.Messages()[0]; m.MessagingServiceSID != "MG123" || m.From != "" {
		t.Fatalf("fake got %+v", m)
	}
}

func TestTwilioErrorsMapToRejectedOrFailed(t *testing.T) {
	cases := []struct {
		name     string
		failure  *faketwilio.Failure
		token    string
		rejected bool
	}{
		{"invalid number 21211", &faketwilio.Failure{HTTPStatus: 400, Code: 21211}, token, true},
		{"not a mobile 21614", &faketwilio.Failure{HTTPStatus: 400, Code: 21614}, token, true},
		{"server error with JSON", &faketwilio.Failure{HTTPStatus: 500, Code: 20500}, token, false},
		{"server error without JSON", &faketwilio.Failure{HTTPStatus: 503}, token, false},
		{"too slow", &faketwilio.Failure{HTTPStatus: 201, Code: 1, Delay: 3 * time.Second}, token, false},
		{"wrong credentials", nil, "wrongtoken", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := faketwilio.New(sid, token)
			fake.SetFailure(tc.failure)
			tw := newTwilio(t, fake, func(c *TwilioConfig) { c.AuthToken = tc.token })
			start := time.Now()
			err := tw.Send(context.Background(), msgTo, msgBody)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, verify.ErrRejectedNumber) != tc.rejected {
				t.Fatalf("err %v: rejected = %v, want %v", err, !tc.rejected, tc.rejected)
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Fatalf("took %v, the timeout is 1 s", d)
			}
		})
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
	c.Send(context.Background(), "+14155552671", "Your verification code is: 123456\n\n@example.com #123456")
	want := "DEV SMS to +14155552671: Your verification code is: 123456 | @example.com #123456\n"
	if out.String() != want {
		t.Fatalf("printed %q, want %q", out.String(), want)
	}
}
