package main

import (
	"strings"
	"testing"
	"time"

	"verifier/sms/faketwilio"
)

func (c *client) registerBy(phone, channel string) {
	c.send("register", map[string]any{"phone_number": phone, "channel": channel, "reverify": true})
}

func TestACallSaysTheCodeAndCodeGeneratedNamesTheChannel(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	c.registerBy(phone, "call")
	if f := c.expect("code_generated", ""); f.Data["channel"] != "call" {
		t.Fatalf("code_generated %v does not name the call", f.Data)
	}
	calls := ts.Twilio.Calls()
	if len(calls) != 1 || len(ts.Twilio.Messages()) != 1 || calls[0].To != phone {
		t.Fatalf("calls %+v, messages %d: want one call and no text", calls, len(ts.Twilio.Messages()))
	}
	if strings.Count(calls[0].Twiml, "<Say") != 2 || !strings.Contains(calls[0].Twiml, `language="en-US"`) {
		t.Fatalf("TwiML %q: want the code said twice in English", calls[0].Twiml)
	}
	c.verify(phone, faketwilio.Code(calls[0].Body))
	c.expect("verified", "")
}

func TestACallCountsAsATextAgainstTheLimits(t *testing.T) {
	ts := startServer(t, []string{"-max-sms-per-number=1", "-resend-after=0s"}, nil)
	c := dial(t, ts.URL)
	c.registerBy(phone, "sms")
	if f := c.expect("code_generated", ""); f.Data["channel"] != "sms" {
		t.Fatalf("code_generated %v", f.Data)
	}
	c.registerBy(phone, "call")
	c.expect("update", "rate_limited")
	if n := len(ts.Twilio.Calls()); n != 0 {
		t.Fatalf("%d calls placed past the per-number limit", n)
	}
}

func TestUnknownOrUnavailableChannelsAreBadRequests(t *testing.T) {
	ts := startServer(t, nil, map[string]string{"TWILIO_FROM_NUMBER": "", "TWILIO_MESSAGING_SERVICE_SID": "MG123"})
	c := dial(t, ts.URL)
	c.registerBy(phone, "call") // a messaging service places no calls
	if f := c.expect("update", "bad_request"); !strings.Contains(f.Data["message"].(string), `unknown channel "call"`) {
		t.Fatalf("message %q", f.Data["message"])
	}
	c.registerBy(phone, "fax")
	c.expect("update", "bad_request")
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d messages for refused channels", n)
	}
}

func TestTheConsolePrintsACallAndTheDevInboxShowsIt(t *testing.T) {
	ts := startServer(t, nil, map[string]string{"TWILIO_ACCOUNT_SID": ""})
	c := dial(t, ts.URL)
	c.registerBy(phone, "call")
	var inbox frame
	for range 2 { // the dev inbox entry and the answer, in either order
		if f := c.next(); f.Event == "dev_sms" {
			inbox = f
		} else if f.Event != "code_generated" || f.Data["channel"] != "call" {
			t.Fatalf("got %v", f)
		}
	}
	line := ts.stdout.waitFor(t, "DEV CALL to "+phone+": ")
	code := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.TrimPrefix(line, "DEV CALL to "+phone+": "))
	if len(code) != 6 || !strings.Contains(inbox.Data["body"].(string), strings.Join(strings.Split(code, ""), ", ")) {
		t.Fatalf("printed %q, inbox %v", line, inbox.Data)
	}
	c.verify(phone, code)
	c.expect("verified", "")
}

// TestSwitchingToACallSkipsTheResendWait: the text did not arrive, so the
// person asks for a call at once; asking again by the same channel waits.
func TestSwitchingToACallSkipsTheResendWait(t *testing.T) {
	ts := startServer(t, []string{"-resend-after=1h"}, nil)
	c := dial(t, ts.URL)
	c.registerBy(phone, "sms")
	c.expect("code_generated", "")
	c.registerBy(phone, "sms")
	c.expect("update", "already_requested")
	c.registerBy(phone, "call")
	if f := c.expect("code_generated", ""); f.Data["channel"] != "call" {
		t.Fatalf("switch: %v", f.Data)
	}
	c.registerBy(phone, "call")
	c.expect("update", "already_requested")
	text := ts.Twilio.LastCode(phone) // the call is the last message the fake took
	calls := ts.Twilio.Calls()
	if len(calls) != 1 || faketwilio.Code(calls[0].Body) != text {
		t.Fatalf("calls %+v", calls)
	}
	c.verify(phone, text)
	c.expect("verified", "")
}

func TestASpanishCallSpeaksSpanish(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	c.send("register", map[string]any{"phone_number": phone, "channel": "call", "lang": "es"})
	c.expect("code_generated", "")
	calls := ts.Twilio.Calls()
	if len(calls) != 1 || !strings.Contains(calls[0].Twiml, `<Say language="es-ES">Su código de verificación es `) {
		t.Fatalf("calls %+v", calls)
	}
}

// TestATextWithNoDeliveryReportOffersACall: with status callbacks on, a
// text that nobody reports delivered within -fallback-after brings the
// asking page an offer; a delivered one does not.
func TestATextWithNoDeliveryReportOffersACall(t *testing.T) {
	const public = "https://verify.example.com"
	ts := startServer(t, []string{"-public-url=" + public, "-fallback-after=200ms", "-resend-after=1h"}, nil)
	c := dial(t, ts.URL)
	c.register(phone)
	c.expect("code_generated", "")
	if f := c.expect("update", "sms_late"); f.Data["phone_number"] != phone || f.Data["channel"] != "sms" {
		t.Fatalf("offer %v", f.Data)
	}
	c.registerBy(phone, "call") // no resend wait for switching
	c.expect("code_generated", "")

	other, watcher := numberN(1), dial(t, ts.URL)
	watcher.register(other)
	watcher.expect("code_generated", "")
	postStatus(t, ts.URL, public, other, "delivered")
	watcher.expect("update", "sms_delivered")
	watcher.ws.SetReadDeadline(time.Now().Add(600 * time.Millisecond))
	var f frame
	if err := watcher.ws.ReadJSON(&f); err == nil {
		t.Fatalf("a delivered text still brought %v", f)
	}
}

func TestAnOversizedChannelNameIsRefusedAndNotEchoedWhole(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	long := strings.Repeat("x", 3000)
	c.registerBy(phone, long)
	f := c.expect("update", "bad_request")
	if msg := f.Data["message"].(string); strings.Contains(msg, long[:100]) || len(msg) > 200 {
		t.Fatalf("message of %d bytes echoes the channel: %q", len(msg), msg[:min(len(msg), 120)])
	}
	if n := len(ts.Twilio.Messages()); n != 0 {
		t.Fatalf("%d messages for a refused channel", n)
	}
}
