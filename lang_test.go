package main

import (
	"strconv"
	"strings"
	"testing"

	"verifier/assets"
)

// langBundle is the real i18n bundle the server words its messages from.
func langBundle(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := assets.Load(assets.Options{})
	if err != nil {
		t.Fatalf("assets.Load: %v", err)
	}
	for _, l := range []string{"en", "es", "fr"} {
		if b.Languages[l] == nil {
			t.Fatalf("the bundle has no %q", l)
		}
	}
	return b.Languages
}

// langClient is a tab whose every frame says which language it reads.
type langClient struct {
	*client
	lang   string
	bundle map[string]map[string]string
}

func dialLang(t *testing.T, ts *testServer, lang string, bundle map[string]map[string]string) *langClient {
	return &langClient{client: dial(t, ts.URL), lang: lang, bundle: bundle}
}

func (c *langClient) say(event string, data map[string]any) {
	c.t.Helper()
	data["lang"] = c.lang
	c.send(event, data)
}

func (c *langClient) registerLang(phone string) {
	c.t.Helper()
	c.say("register", map[string]any{"phone_number": phone})
}

func (c *langClient) resumeLang(phone string) {
	c.t.Helper()
	c.say("resume", map[string]any{"phone_number": phone})
}

func (c *langClient) verifyLang(phone, code string) {
	c.t.Helper()
	c.say("verify", map[string]any{"phone_number": phone, "code": code})
}

// expectWorded reads the next frame, checks its event and reason, and
// that its message is the bundle's text for key in the client's language
// with the frame's own facts filled in; it returns the frame.
func (c *langClient) expectWorded(event, reason, key string) frame {
	c.t.Helper()
	f := c.expect(event, reason)
	msg, _ := f.Data["message"].(string)
	want := langFill(c.bundle[c.lang][key], f)
	if msg != want {
		c.t.Fatalf("%s %s to the %s tab: message %q, want %q (%s.json %q)", event, reason, c.lang, msg, want, c.lang, key)
	}
	if strings.ContainsAny(msg, "{}") {
		c.t.Fatalf("message %q keeps a placeholder", msg)
	}
	if c.bundle[c.lang][key] != c.bundle["en"][key] && msg == langFill(c.bundle["en"][key], f) {
		c.t.Fatalf("the %s tab got the English message %q", c.lang, msg)
	}
	return f
}

// langFill fills a bundle text from a frame's data, as a person reads it.
func langFill(text string, f frame) string {
	phone, _ := f.Data["phone_number"].(string)
	attempts := ""
	if n, ok := f.Data["attempts_left"].(float64); ok {
		attempts = strconv.Itoa(int(n))
	}
	return strings.NewReplacer("{phone}", phone, "{attempts}", attempts).Replace(text)
}

// A Spanish tab and a French tab on one number each read every answer in
// their own language, and the French tab hears the Spanish tab's success.
func TestLangTwoTabsOnOneNumberEachReadTheirOwnLanguage(t *testing.T) {
	bundle := langBundle(t)
	ts := startServer(t, []string{"-max-attempts=2"}, nil)
	const number = "+14155554001"
	es, fr := dialLang(t, ts, "es", bundle), dialLang(t, ts, "fr", bundle)

	es.registerLang("12345")
	es.expectWorded("update", "invalid_phone", "reason_invalid_phone")
	fr.registerLang("12345")
	fr.expectWorded("update", "invalid_phone", "reason_invalid_phone")

	es.registerLang("(415) 555-4001")
	if f := es.expect("code_generated", ""); f.Data["phone_number"] != number || f.Data["message"] != nil {
		t.Fatalf("code_generated %v", f.Data)
	}
	if msgs := ts.Twilio.To(number); len(msgs) != 1 || !strings.HasPrefix(msgs[0].Body, strings.Split(bundle["es"]["sms_body"], "{code}")[0]) {
		t.Fatalf("texts to %s: %+v, want one in Spanish", number, msgs)
	}
	code := ts.codeFor(t, number)

	fr.registerLang(number)
	if f := fr.expectWorded("update", "already_requested", "reason_already_requested"); f.Data["phone_number"] != number {
		t.Fatalf("already_requested %v", f.Data)
	}
	es.registerLang(number)
	es.expectWorded("update", "already_requested", "reason_already_requested")
	if n := len(ts.Twilio.To(number)); n != 1 {
		t.Fatalf("%d texts after already_requested, want 1", n)
	}

	es.verifyLang(number, wrongCode(code))
	if f := es.expectWorded("update", "wrong_code", "reason_wrong_code"); f.Data["attempts_left"] != 1.0 {
		t.Fatalf("attempts_left %v, want 1", f.Data["attempts_left"])
	}

	es.verifyLang(number, code)
	if f := es.expect("verified", ""); f.Data["token"] == nil || f.Data["phone_number"] != number {
		t.Fatalf("the typing tab's verified %v", f.Data)
	}
	f := fr.expect("verified", "")
	if _, ok := f.Data["token"]; ok || f.Data["phone_number"] != number || f.Data["verified_at"] == nil {
		t.Fatalf("the French tab's verified %v: want phone_number, verified_at and no token", f.Data)
	}

	// Once verified, each tab is told so in its own language.
	fr.resumeLang(number)
	fr.expectWorded("update", "already_verified", "reason_already_verified")
	es.registerLang(number)
	es.expectWorded("update", "already_verified", "reason_already_verified")
	fr.verifyLang(number, code)
	fr.expectWorded("update", "not_requested", "reason_not_requested")
}

// A reset pushed to two tabs is worded for each in its own language: after
// the last allowed wrong code, and when the code expires.
func TestLangResetIsPushedToEachTabInItsOwnLanguage(t *testing.T) {
	bundle := langBundle(t)

	t.Run("too_many_attempts", func(t *testing.T) {
		ts := startServer(t, []string{"-max-attempts=2"}, nil)
		const number = "+14155554002"
		fr, es := dialLang(t, ts, "fr", bundle), dialLang(t, ts, "es", bundle)
		fr.registerLang(number)
		fr.expect("code_generated", "")
		if body := ts.Twilio.To(number)[0].Body; !strings.HasPrefix(body, strings.Split(bundle["fr"]["sms_body"], "{code}")[0]) {
			t.Fatalf("text %q, want French", body)
		}
		es.resumeLang(number)
		es.expectWorded("update", "code_pending", "reason_code_pending")
		wrong := wrongCode(ts.codeFor(t, number))
		fr.verifyLang(number, wrong)
		fr.expectWorded("update", "wrong_code", "reason_wrong_code")
		fr.verifyLang(number, wrong)
		fr.expectWorded("reset", "too_many_attempts", "reason_too_many_attempts")
		es.expectWorded("reset", "too_many_attempts", "reason_too_many_attempts")
		es.resumeLang(number)
		es.expectWorded("reset", "not_requested", "reason_not_requested")
	})

	t.Run("expired", func(t *testing.T) {
		ts := startServer(t, []string{"-code-ttl=1s"}, nil)
		const number = "+14155554003"
		es, fr := dialLang(t, ts, "es", bundle), dialLang(t, ts, "fr", bundle)
		es.registerLang(number)
		es.expect("code_generated", "")
		fr.resumeLang(number)
		fr.expectWorded("update", "code_pending", "reason_code_pending")
		es.expectWorded("reset", "expired", "reason_expired")
		fr.expectWorded("reset", "expired", "reason_expired")
	})
}

// A refused frame is worded in the language it carries, and later frames
// without one keep the connection's language.
func TestLangBadRequestInFrench(t *testing.T) {
	bundle := langBundle(t)
	ts := startServer(t, nil, nil)
	fr := dialLang(t, ts, "fr", bundle)
	prefix, suffix, ok := strings.Cut(bundle["fr"]["msg_bad_request"], "{detail}")
	if !ok {
		t.Fatalf("fr msg_bad_request %q has no {detail}", bundle["fr"]["msg_bad_request"])
	}
	checkFrench := func(f frame, mentions string) {
		t.Helper()
		msg, _ := f.Data["message"].(string)
		if !strings.HasPrefix(msg, prefix) || !strings.HasSuffix(msg, suffix) || len(msg) <= len(prefix)+len(suffix) {
			t.Fatalf("message %q, want fr msg_bad_request %q with its detail", msg, bundle["fr"]["msg_bad_request"])
		}
		if !strings.Contains(msg, mentions) || strings.ContainsAny(msg, "{}") {
			t.Fatalf("message %q: want it to name %q and keep no placeholder", msg, mentions)
		}
	}

	// The very first frame, refused, already carries the language.
	fr.say("register", map[string]any{})
	f := fr.expect("update", "bad_request")
	checkFrench(f, "phone_number")
	if len(f.Data) != 2 {
		t.Fatalf("bad_request data %v, want only reason and message", f.Data)
	}

	// Frames that carry no language are worded in the connection's.
	fr.sendRaw("not json")
	checkFrench(fr.expect("update", "bad_request"), "JSON")
	fr.send("launch_missiles", map[string]any{"phone_number": "+14155554004"})
	checkFrench(fr.expect("update", "bad_request"), "launch_missiles")
	fr.register("12345")
	fr.expectWorded("update", "invalid_phone", "reason_invalid_phone")

	// The connection stays open and still works.
	fr.registerLang("+14155554004")
	fr.expect("code_generated", "")
}
