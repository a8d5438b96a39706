package channel

import (
	"context"
	"encoding/xml"
	"strings"

	"verifier/verify"
)

// Voice is one call that says a code.
type Voice struct {
	To     string // E.164
	TwiML  string // what Twilio is to do on the call
	Spoken string // what the call says, once, for the console and the dev inbox
	Conn   string // the connection that asked for it
}

// Caller places a voice call.
type Caller interface {
	Call(ctx context.Context, v Voice) error
}

// Call says the code on a phone call: the digits one by one with pauses,
// twice, in the person's language, for people whose texts do not arrive.
type Call struct {
	caller Caller
	texts  map[string]string // language -> what is said, with {digits}
}

var _ verify.Channel = (*Call)(nil)

// NewCall checks that every text has {digits} and that English is there.
func NewCall(caller Caller, texts map[string]string) (*Call, error) {
	if err := checkTexts(texts, "{digits}", "call"); err != nil {
		return nil, err
	}
	return &Call{caller: caller, texts: texts}, nil
}

// sayLanguages are the voices <Say language> offers for the languages
// the bundle has; another language is passed as it is.
var sayLanguages = map[string]string{"en": "en-US", "es": "es-ES", "fr": "fr-FR"}

// Deliver implements verify.Channel.
func (c *Call) Deliver(ctx context.Context, d verify.Delivery) error {
	lang := d.Lang
	text, ok := c.texts[lang]
	if !ok {
		lang, text = "en", c.texts["en"]
	}
	spoken := strings.ReplaceAll(text, "{digits}", strings.Join(strings.Split(d.Code, ""), ", "))
	voice := sayLanguages[lang]
	if voice == "" {
		voice = lang
	}
	say := `<Say language="` + escape(voice) + `">` + escape(spoken) + `</Say>`
	twiml := `<?xml version="1.0" encoding="UTF-8"?><Response>` + say + `<Pause length="1"/>` + say + `</Response>`
	return c.caller.Call(ctx, Voice{To: d.To, TwiML: twiml, Spoken: spoken, Conn: d.Conn})
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
