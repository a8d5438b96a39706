package server

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

func TestDecodeFrame(t *testing.T) {
	cases := []struct {
		in   string
		want request
		bad  bool
	}{
		{in: `{"event":"register","data":{"phone_number":"+14155552671"}}`, want: request{Event: "register", Phone: "+14155552671"}},
		{in: `{"event":"register","data":{"phone_number":"+14155552671","reverify":true}}`, want: request{Event: "register", Phone: "+14155552671", Reverify: true}},
		{in: `{"event":"verify","data":{"phone_number":"+14155552671","code":"123456"}}`, want: request{Event: "verify", Phone: "+14155552671", Code: "123456"}},
		{in: `{"event":"resume","data":{"phone_number":"+14155552671","extra":1}}`, want: request{Event: "resume", Phone: "+14155552671"}},
		{in: ``, bad: true},
		{in: `null`, bad: true},
		{in: `{"event":"register","data":null}`, bad: true},
		{in: `{"event":"register","data":{"phone_number":""}}`, bad: true},
		{in: `{"event":"register","data":{"phone_number":"+1","reverify":"yes"}}`, bad: true},
		{in: `{"event":"verify","data":{"phone_number":"+1","code":123456}}`, bad: true},
		{in: `{"event":"REGISTER","data":{"phone_number":"+1"}}`, bad: true},
		{in: `{"event":"register","data":{"phone_number":"+14155552671","channel":"call","lang":"es-MX"}}`,
			want: request{Event: "register", Phone: "+14155552671", Channel: "call", Lang: "es"}},
		{in: `{"event":"register","data":{"phone_number":"+1","channel":7}}`, bad: true},
		{in: `{"event":"register","data":{"phone_number":"+1","channel":["sms"]}}`, bad: true},
		// Missing, null and empty are one refusal each.
		{in: `{"data":{"phone_number":"+1"}}`, bad: true},
		{in: `{"event":null,"data":{"phone_number":"+1"}}`, bad: true},
		{in: `{"event":"","data":{"phone_number":"+1"}}`, bad: true},
		{in: `{"event":"register","data":{"phone_number":null}}`, bad: true},
		{in: `{"event":"verify","data":{"phone_number":"+1","code":null}}`, bad: true},
		{in: `{"event":"register","data":{"phone_number":"+1","reverify":null,"lang":null}}`, want: request{Event: "register", Phone: "+1"}},
	}
	for _, tc := range cases {
		got, err := decodeFrame([]byte(tc.in))
		if tc.bad {
			if !errors.Is(err, errBadFrame) {
				t.Errorf("%s: err = %v, want errBadFrame", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzDecodeFrame: any bytes give either a complete request or errBadFrame,
// never a panic, and the error text stays short and printable.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"event":"register","data":{"phone_number":"+14155552671"}}`,
		`{"event":"verify","data":{"phone_number":"+14155552671","code":"123456"}}`,
		`{"event":"resume","data":{"phone_number":"(415) 555-2671"}}`,
		`{"event":"register","data":{"phone_number":"+1","reverify":true}}`,
		`{"event":"register","data":{"phone_number":"+1","channel":"call"}}`,
		`{"event":"\u0000","data":{}}`,
		`{"event":"register","data":[1,2]}`,
		`{"event":"register","data":{"phone_number":"+1"},"event":"verify"}`,
		`[{"event":"register"}]`,
		`{"event":"` + "\xff\xfe" + `"}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decodeFrame(frame)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("error %v does not wrap errBadFrame", err)
			}
			if len(err.Error()) > 128 {
				t.Fatalf("error text too long: %d bytes", len(err.Error()))
			}
			return
		}
		if req.Phone == "" || (req.Event == eventVerify && req.Code == "") {
			t.Fatalf("accepted incomplete request %+v from %q", req, frame)
		}
		if !json.Valid(frame) || !utf8.Valid([]byte(req.Event)) {
			t.Fatalf("accepted invalid input %q", frame)
		}
	})
}

func TestLanguageTag(t *testing.T) {
	for in, want := range map[string]string{"es": "es", "es-MX": "es", "FR": "fr", "": "", "e": "", "english": "", "<b>": "", "zh-Hant-TW": "zh"} {
		if got := languageTag(in); got != want {
			t.Errorf("languageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`{"event":"verify","data":{"phone_number":"+14155552671","code":"123456"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}
