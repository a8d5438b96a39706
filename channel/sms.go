// Package channel holds the ways a code travels to a person. Each one words
// its message in the person's language and hands it to a transport (the
// sms package speaks Twilio); each is a verify.Channel.
package channel

import (
	"context"
	"fmt"
	"strings"

	"verifier/verify"
)

// Text is one text message.
type Text struct {
	To   string // E.164, or whatsapp:+E.164
	Body string
	Conn string // the connection that asked for it (the dev inbox shows it there only)
	// ContentSID names an approved template (WhatsApp's business-initiated
	// messages need one), filled with ContentVariables (JSON); Body is then
	// empty.
	ContentSID, ContentVariables string
}

// Sender carries a text message to a number.
type Sender interface {
	Send(ctx context.Context, t Text) error
}

// SMS texts the code. Its last line is the WebOTP one, naming the host
// whose page asked, so the phone offers to fill the code in there.
type SMS struct {
	sender     Sender
	texts      map[string]string // language -> body with {code}
	webOTPHost string            // host named when the server's own page asks; "" for none
	linkBase   string            // the server's public URL, for tap-to-verify links; "" for none
	linkTexts  map[string]string // language -> the link's line, with {link}
}

var _ verify.Channel = (*SMS)(nil)

// NewSMS checks that every text has {code} and that English is there to
// fall back on.
func NewSMS(sender Sender, texts map[string]string, webOTPHost string) (*SMS, error) {
	if err := checkTexts(texts, "{code}", "SMS"); err != nil {
		return nil, err
	}
	return &SMS{sender: sender, texts: texts, webOTPHost: webOTPHost}, nil
}

// checkTexts wants an English text, and the placeholder in every text.
func checkTexts(texts map[string]string, placeholder, what string) error {
	if _, ok := texts["en"]; !ok {
		return fmt.Errorf("channel: the %s text needs an English version", what)
	}
	for lang, text := range texts {
		if !strings.Contains(text, placeholder) {
			return fmt.Errorf("channel: the %q %s text lacks %s", lang, what, placeholder)
		}
	}
	return nil
}

// LinkPath is where a tap-to-verify link leads, under the public URL.
const LinkPath = "/v/"

// Links makes the texts carry a delivery's tap-to-verify link, under the
// server's public URL, on a line of its own in the person's language.
func (c *SMS) Links(publicURL string, lines map[string]string) error {
	if err := checkTexts(lines, "{link}", "link"); err != nil {
		return err
	}
	c.linkBase, c.linkTexts = strings.TrimRight(publicURL, "/")+LinkPath, lines
	return nil
}

// Deliver implements verify.Channel.
func (c *SMS) Deliver(ctx context.Context, d verify.Delivery) error {
	return c.sender.Send(ctx, Text{To: d.To, Body: c.body(d), Conn: d.Conn})
}

func (c *SMS) body(d verify.Delivery) string {
	body := strings.ReplaceAll(inLang(c.texts, d.Lang), "{code}", d.Code)
	if d.Link != "" && c.linkBase != "" {
		body += "\n" + strings.ReplaceAll(inLang(c.linkTexts, d.Lang), "{link}", c.linkBase+d.Link)
	}
	host := d.Host
	if host == "" {
		host = c.webOTPHost
	}
	if host != "" {
		body += "\n\n@" + host + " #" + d.Code
	}
	return body
}

// inLang is the text in lang, or in English.
func inLang(texts map[string]string, lang string) string {
	if text, ok := texts[lang]; ok {
		return text
	}
	return texts["en"]
}

// Confirmation texts a verified number the operator's message (-confirm-
// message), in the person's language where the bundle has it.
type Confirmation struct {
	sender Sender
	texts  map[string]string // language -> text; "" falls back to the operator's
	text   string
}

var _ verify.Confirmer = (*Confirmation)(nil)

// NewConfirmation sends text, or texts[lang] where that is set.
func NewConfirmation(sender Sender, text string, texts map[string]string) *Confirmation {
	return &Confirmation{sender: sender, text: text, texts: texts}
}

// Confirm implements verify.Confirmer.
func (c *Confirmation) Confirm(ctx context.Context, to, lang string) error {
	body := c.texts[lang]
	if body == "" {
		body = c.text
	}
	return c.sender.Send(ctx, Text{To: to, Body: body})
}
