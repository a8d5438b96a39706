package server

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"verifier/assets"
	"verifier/verify"
)

// realTexts is the server's wording from the real, embedded i18n bundle.
func realTexts(t *testing.T) (*Texts, map[string]map[string]string) {
	t.Helper()
	b, err := assets.Load(assets.Options{})
	if err != nil {
		t.Fatalf("assets.Load: %v", err)
	}
	texts, err := NewTexts(b.Languages)
	if err != nil {
		t.Fatalf("NewTexts(real bundle): %v", err)
	}
	return texts, b.Languages
}

// renderSample is one outcome with every field set, so that a kind that
// leaks a field it should not carry shows it on the wire.
func renderSample(k verify.Kind) verify.Outcome {
	return verify.Outcome{
		Kind:         k,
		Phone:        "+14155552671",
		Channel:      "sms",
		ExpiresIn:    600 * time.Second,
		ResendIn:     29200 * time.Millisecond, // 30 on the wire
		CodeLength:   6,
		AttemptsLeft: 2,
		RetryAfter:   125300 * time.Millisecond, // 126 s: "2:06"
		Country:      "GB",
		VerifiedAt:   time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600)),
		Token:        "tok.en",
		Status:       "sent",
		ErrorCode:    "30003",
		Body:         "Your verification code is: 123456",
	}
}

// fillPlaceholders words a bundle text as the wire should: written here
// independently of say.
func fillPlaceholders(text string, o verify.Outcome, detail string) string {
	secs := int((o.RetryAfter + time.Second - 1) / time.Second)
	if o.RetryAfter <= 0 {
		secs = 0
	}
	clock := strconv.Itoa(secs/60) + ":" + strconv.Itoa(secs%60/10) + strconv.Itoa(secs%10)
	return strings.NewReplacer(
		"{phone}", o.Phone,
		"{attempts}", strconv.Itoa(o.AttemptsLeft),
		"{time}", clock,
		"{country}", o.Country,
		"{detail}", detail,
	).Replace(text)
}

// tableKinds is every Kind with a row in the forms table.
func tableKinds() []verify.Kind {
	var kinds []verify.Kind
	for k := range forms {
		if forms[k].event != "" {
			kinds = append(kinds, verify.Kind(k))
		}
	}
	return kinds
}

type renderedFrame struct {
	Event string         `json:"event"`
	Data  map[string]any `json:"data"`
}

func decodeRendered(t *testing.T, frame []byte) renderedFrame {
	t.Helper()
	if !json.Valid(frame) {
		t.Fatalf("frame is not JSON: %s", frame)
	}
	var f renderedFrame
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	if f.Data == nil {
		t.Fatalf("frame has no data object: %s", frame)
	}
	return f
}

// checkWording checks one rendered frame against its form: event, reason,
// and a message that is the bundle's text in lang (English when the bundle
// has no such language), filled.
func checkWording(t *testing.T, bundle map[string]map[string]string, frame []byte, f form, lang string, o verify.Outcome, detail string) {
	t.Helper()
	got := decodeRendered(t, frame)
	if got.Event != f.event {
		t.Errorf("event %q, want %q", got.Event, f.event)
	}
	reason, hasReason := got.Data["reason"]
	if f.reason == "" && hasReason {
		t.Errorf("reason %v on a form with none", reason)
	}
	if f.reason != "" && reason != f.reason {
		t.Errorf("reason %v, want %q", reason, f.reason)
	}
	msg, hasMsg := got.Data["message"].(string)
	if f.message == "" {
		if _, ok := got.Data["message"]; ok {
			t.Errorf("message %v on a form with no message key", got.Data["message"])
		}
		return
	}
	if !hasMsg || msg == "" {
		t.Fatalf("no message (key %q) in %s", f.message, frame)
	}
	wordedIn := lang
	if _, ok := bundle[lang]; !ok {
		wordedIn = "en"
	}
	raw, ok := bundle[wordedIn][f.message]
	if !ok {
		t.Fatalf("bundle %s has no %q", wordedIn, f.message)
	}
	if want := fillPlaceholders(raw, o, detail); msg != want {
		t.Errorf("message %q, want %q (bundle %s %q)", msg, want, wordedIn, f.message)
	}
	if strings.ContainsAny(msg, "{}") {
		t.Errorf("message %q keeps a placeholder", msg)
	}
	if wordedIn != "en" && raw != bundle["en"][f.message] {
		if en := fillPlaceholders(bundle["en"][f.message], o, detail); msg == en {
			t.Errorf("message in %s is the English text %q", lang, msg)
		}
	}
}

func TestRenderEveryKindInEachLanguage(t *testing.T) {
	texts, bundle := realTexts(t)
	for _, lang := range []string{"es", "fr", "de", "en"} {
		for _, k := range tableKinds() {
			t.Run(lang+"/"+k.String(), func(t *testing.T) {
				o := renderSample(k)
				frame, f := texts.render(o, lang)
				if f != forms[k] {
					t.Errorf("render used form %+v, table has %+v", f, forms[k])
				}
				checkWording(t, bundle, frame, forms[k], lang, o, "")
			})
		}
		for name, f := range map[string]form{"internalError": internalError, "badRequest": badRequest} {
			t.Run(lang+"/"+name, func(t *testing.T) {
				detail := ""
				if f == badRequest {
					detail = "bad request: missing phone_number"
				}
				checkWording(t, bundle, texts.renderForm(f, lang, detail), f, lang, verify.Outcome{}, detail)
			})
		}
	}
}

// An unknown language is worded exactly as English.
func TestRenderUnknownLanguageFallsBackToEnglish(t *testing.T) {
	texts, _ := realTexts(t)
	if got := texts.Lang("de"); got != "en" {
		t.Errorf(`Lang("de") = %q, want "en"`, got)
	}
	for _, k := range tableKinds() {
		o := renderSample(k)
		de, _ := texts.render(o, "de")
		en, _ := texts.render(o, "en")
		if string(de) != string(en) {
			t.Errorf("%s: de %s, en %s", k, de, en)
		}
	}
	for _, f := range []form{internalError, badRequest} {
		if de, en := texts.renderForm(f, "de", "x"), texts.renderForm(f, "en", "x"); string(de) != string(en) {
			t.Errorf("%s: de %s, en %s", f.reason, de, en)
		}
	}
}

// Every message key the table words is in every language of the real
// bundle (a missing one would silently fall back to English), and the
// languages that differ from English on it are actually translated.
func TestRenderTableKeysAreInEveryLanguage(t *testing.T) {
	_, bundle := realTexts(t)
	for _, f := range append(forms[:], internalError, badRequest) {
		if f.message == "" {
			continue
		}
		for _, lang := range []string{"es", "fr"} {
			text, ok := bundle[lang][f.message]
			if !ok {
				t.Errorf("%s lacks %q", lang, f.message)
				continue
			}
			if text == bundle["en"][f.message] {
				t.Logf("note: %s %q is the English text %q", lang, f.message, text)
			}
		}
	}
}

// A language that lacks one key falls back to English for that key only.
func TestRenderMissingKeyInALanguageFallsBackToEnglish(t *testing.T) {
	_, bundle := realTexts(t)
	langs := map[string]map[string]string{}
	for l, strs := range bundle {
		langs[l] = maps.Clone(strs)
	}
	delete(langs["es"], "reason_wrong_code")
	texts, err := NewTexts(langs)
	if err != nil {
		t.Fatalf("NewTexts: %v", err)
	}
	o := renderSample(verify.WrongCode)
	frame, _ := texts.render(o, "es")
	checkWording(t, map[string]map[string]string{"en": bundle["en"]}, frame, forms[verify.WrongCode], "es", o, "")
	frame, _ = texts.render(renderSample(verify.TooManyAttempts), "es")
	checkWording(t, bundle, frame, forms[verify.TooManyAttempts], "es", renderSample(verify.TooManyAttempts), "")
}

// Every Kind the rules declare has a row in the table; a Kind beyond it is
// an internal error, never an empty frame.
func TestRenderTableCoversEveryKind(t *testing.T) {
	for k := verify.Kind(1); k.String() != "unknown"; k++ {
		if k == verify.LinkLive || k == verify.LinkUsed || k == verify.LinkInvalid {
			continue // the tap-to-verify page shows these (tapStates), never the socket
		}
		if int(k) >= len(forms) || forms[k].event == "" {
			t.Errorf("kind %s has no form", k)
		}
	}
	if f := formOf(verify.Kind(250)); f != internalError {
		t.Errorf("formOf(250) = %+v, want internalError", f)
	}
	texts, bundle := realTexts(t)
	frame, f := texts.render(verify.Outcome{Kind: 250, Phone: "+14155552671"}, "fr")
	if f != internalError {
		t.Errorf("rendered as %+v", f)
	}
	checkWording(t, bundle, frame, internalError, "fr", verify.Outcome{}, "")
	if got := decodeRendered(t, frame); got.Data["phone_number"] != nil {
		t.Errorf("internal error carries phone_number: %s", frame)
	}
}

// renderKeyCase is the wire of one kind: its event, its reason and the exact
// data keys, as testdata/transcript.golden pins them.
type renderKeyCase struct {
	name   string
	kind   verify.Kind // 0: use f
	f      form        // a non-outcome form, when kind is 0
	tweak  func(*verify.Outcome)
	event  string
	reason string
	keys   []string // every data key, sorted
	// golden is false for the rare frame the transcript does not show.
	golden bool
}

var renderKeyCases = []renderKeyCase{
	{name: "code_generated", kind: verify.CodeSent, event: "code_generated",
		keys: []string{"channel", "code_length", "expires_in", "phone_number", "resend_in"}, golden: true},
	{name: "verified with token", kind: verify.Verified, event: "verified",
		keys: []string{"phone_number", "token", "verified_at"}, golden: true},
	{name: "verified published", kind: verify.Verified, tweak: func(o *verify.Outcome) { o.Token = "" }, event: "verified",
		keys: []string{"phone_number", "verified_at"}, golden: true},
	{name: "invalid_phone", kind: verify.InvalidPhone, event: "update", reason: "invalid_phone",
		keys: []string{"message", "reason"}, golden: true},
	{name: "number_rejected", kind: verify.NumberRejected, event: "update", reason: "invalid_phone",
		keys: []string{"message", "phone_number", "reason"}, golden: true},
	{name: "country_not_allowed", kind: verify.CountryNotAllowed, event: "update", reason: "country_not_allowed",
		keys: []string{"country", "message", "phone_number", "reason"}, golden: true},
	{name: "already_verified", kind: verify.AlreadyVerified, event: "update", reason: "already_verified",
		keys: []string{"message", "phone_number", "reason"}, golden: true}, // no date for strangers
	{name: "already_requested", kind: verify.AlreadyRequested, event: "update", reason: "already_requested",
		keys: []string{"code_length", "expires_in", "message", "phone_number", "reason", "resend_in"}, golden: true},
	{name: "code_pending", kind: verify.CodePending, event: "update", reason: "code_pending",
		keys: []string{"code_length", "expires_in", "message", "phone_number", "reason", "resend_in"}, golden: true},
	{name: "nothing_pending", kind: verify.NothingPending, event: "reset", reason: "not_requested",
		keys: []string{"message", "phone_number", "reason"}, golden: true},
	{name: "rate_limited", kind: verify.RateLimited, event: "update", reason: "rate_limited",
		keys: []string{"message", "reason", "retry_after"}, golden: true},
	{name: "send_failed", kind: verify.SendFailed, event: "update", reason: "send_failed",
		keys: []string{"message", "phone_number", "reason"}, golden: true},
	{name: "send_uncertain", kind: verify.SendUncertain, event: "update", reason: "send_failed",
		keys: []string{"message", "phone_number", "reason"}, golden: true},
	{name: "not_requested", kind: verify.NotRequested, event: "update", reason: "not_requested",
		keys: []string{"message", "phone_number", "reason"}, golden: true},
	{name: "wrong_code", kind: verify.WrongCode, event: "update", reason: "wrong_code",
		keys: []string{"attempts_left", "message", "phone_number", "reason"}, golden: true},
	{name: "wrong_code with none left", kind: verify.WrongCode, tweak: func(o *verify.Outcome) { o.AttemptsLeft = 0 },
		event: "update", reason: "wrong_code",
		keys: []string{"attempts_left", "message", "phone_number", "reason"}, golden: true},
	{name: "too_many_attempts", kind: verify.TooManyAttempts, event: "reset", reason: "too_many_attempts",
		keys: []string{"message", "phone_number", "reason"}, golden: true},
	{name: "expired", kind: verify.Expired, event: "reset", reason: "expired",
		keys: []string{"message", "phone_number", "reason"}, golden: true},
	{name: "sms_sent", kind: verify.DeliverySent, tweak: func(o *verify.Outcome) { o.ErrorCode = "" },
		event: "update", reason: "sms_sent", keys: []string{"message", "phone_number", "reason", "status"}, golden: true},
	{name: "sms_delivered", kind: verify.DeliveryDone, tweak: func(o *verify.Outcome) { o.Status, o.ErrorCode = "delivered", "" },
		event: "update", reason: "sms_delivered", keys: []string{"message", "phone_number", "reason", "status"}, golden: true},
	{name: "sms_failed", kind: verify.DeliveryFailed, tweak: func(o *verify.Outcome) { o.Status = "undelivered" },
		event: "update", reason: "sms_failed", keys: []string{"error_code", "message", "phone_number", "reason", "status"}, golden: true},
	{name: "dev_sms", kind: verify.DevText, event: "dev_sms",
		keys: []string{"body", "phone_number"}, golden: true},
	{name: "bad_request", f: badRequest, event: "update", reason: "bad_request",
		keys: []string{"message", "reason"}, golden: true},
	// Not in the transcript: an internal failure is worded as send_failed
	// with nothing else.
	{name: "internal error", f: internalError, event: "update", reason: "send_failed",
		keys: []string{"message", "reason"}},
}

func (c renderKeyCase) render(texts *Texts, lang string) (verify.Outcome, []byte) {
	if c.kind == 0 {
		return verify.Outcome{}, texts.renderForm(c.f, lang, "detail")
	}
	o := renderSample(c.kind)
	if c.tweak != nil {
		c.tweak(&o)
	}
	frame, _ := texts.render(o, lang)
	return o, frame
}

func TestRenderDataKeysPerKind(t *testing.T) {
	texts, _ := realTexts(t)
	for _, c := range renderKeyCases {
		for _, lang := range []string{"en", "es", "fr"} {
			t.Run(c.name+"/"+lang, func(t *testing.T) {
				o, frame := c.render(texts, lang)
				got := decodeRendered(t, frame)
				if got.Event != c.event {
					t.Errorf("event %q, want %q", got.Event, c.event)
				}
				if r, _ := got.Data["reason"].(string); r != c.reason {
					t.Errorf("reason %q, want %q", r, c.reason)
				}
				if keys := slices.Sorted(maps.Keys(got.Data)); !slices.Equal(keys, c.keys) {
					t.Errorf("data keys %v, want %v: %s", keys, c.keys, frame)
				}
				checkRenderedValues(t, got.Data, o)
			})
		}
	}
}

// checkRenderedValues checks the values the keys carry: E.164 numbers,
// durations in whole seconds rounded up, times in UTC RFC 3339.
func checkRenderedValues(t *testing.T, data map[string]any, o verify.Outcome) {
	t.Helper()
	want := map[string]any{
		"phone_number":  o.Phone,
		"expires_in":    600.0,
		"resend_in":     30.0,
		"code_length":   6.0,
		"attempts_left": float64(o.AttemptsLeft),
		"retry_after":   126.0,
		"country":       o.Country,
		"verified_at":   "2026-03-04T04:06:07Z",
		"token":         o.Token,
		"status":        o.Status,
		"error_code":    o.ErrorCode,
		"body":          o.Body,
	}
	for k, w := range want {
		if v, ok := data[k]; ok && v != w {
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
}

// goldenSignatures reads the pinned wire: for each server frame in
// testdata/transcript.golden, "event reason key,key,...".
func goldenSignatures(t *testing.T) map[string]bool {
	t.Helper()
	file, err := os.Open("../testdata/transcript.golden")
	if err != nil {
		t.Fatalf("golden transcript: %v", err)
	}
	defer file.Close()
	sigs := map[string]bool{}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, raw, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		var f renderedFrame
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			t.Fatalf("golden line %q: %v", line, err)
		}
		reason, _ := f.Data["reason"].(string)
		sigs[renderSignature(f.Event, reason, slices.Sorted(maps.Keys(f.Data)))] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(sigs) == 0 {
		t.Fatal("no frames in the golden transcript")
	}
	return sigs
}

func renderSignature(event, reason string, keys []string) string {
	return event + " " + reason + " " + strings.Join(keys, ",")
}

// The key table above is the transcript's wire: each of its rows is a
// frame the transcript shows, and each frame shape the transcript shows
// is a row.
func TestRenderDataKeysMatchTheGoldenTranscript(t *testing.T) {
	golden := goldenSignatures(t)
	covered := map[string]bool{}
	for _, c := range renderKeyCases {
		sig := renderSignature(c.event, c.reason, c.keys)
		covered[sig] = true
		if c.golden && !golden[sig] {
			t.Errorf("%s: %q is not a frame of the golden transcript", c.name, sig)
		}
	}
	for sig := range golden {
		if !covered[sig] {
			t.Errorf("golden frame %q has no row in the key table", sig)
		}
	}
}

func TestNewTextsRefusesABundleWhoseEnglishLacksAKey(t *testing.T) {
	_, bundle := realTexts(t)
	keys := map[string]bool{}
	for _, f := range append(forms[:], internalError, badRequest) {
		if f.message != "" {
			keys[f.message] = true
		}
	}
	if len(keys) == 0 {
		t.Fatal("the table words nothing")
	}
	for key := range keys {
		langs := map[string]map[string]string{}
		for l, strs := range bundle {
			langs[l] = maps.Clone(strs)
		}
		delete(langs["en"], key)
		texts, err := NewTexts(langs)
		if err == nil || texts != nil {
			t.Errorf("NewTexts accepted English without %q", key)
			continue
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %q", err, key)
		}
	}

	noEnglish := map[string]map[string]string{"es": bundle["es"], "fr": bundle["fr"]}
	if _, err := NewTexts(noEnglish); err == nil {
		t.Error("NewTexts accepted a bundle with no English")
	}
	// A key the table does not use may be missing.
	langs := map[string]map[string]string{"en": maps.Clone(bundle["en"])}
	delete(langs["en"], "title")
	if _, err := NewTexts(langs); err != nil {
		t.Errorf("NewTexts refused English without an unused key: %v", err)
	}
}
