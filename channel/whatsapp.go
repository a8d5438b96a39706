package channel

import (
	"context"
	"encoding/json"
	"strings"

	"verifier/verify"
)

// WhatsApp sends the code as a WhatsApp message to whatsapp:<E.164>: an
// approved template (its variable 1 the code) where one is configured,
// since WhatsApp wants templates for messages a business starts, else the
// text in the person's language. Delivery reports come back as for texts.
type WhatsApp struct {
	sender     Sender
	texts      map[string]string // language -> body with {code}
	contentSID string
}

var _ verify.Channel = (*WhatsApp)(nil)

// NewWhatsApp takes the SMS texts (without their WebOTP line) and the
// template, "" for none.
func NewWhatsApp(sender Sender, texts map[string]string, contentSID string) (*WhatsApp, error) {
	if err := checkTexts(texts, "{code}", "WhatsApp"); err != nil {
		return nil, err
	}
	return &WhatsApp{sender: sender, texts: texts, contentSID: contentSID}, nil
}

// Deliver implements verify.Channel.
func (w *WhatsApp) Deliver(ctx context.Context, d verify.Delivery) error {
	t := Text{To: "whatsapp:" + d.To, Conn: d.Conn}
	if w.contentSID != "" {
		vars, err := json.Marshal(map[string]string{"1": d.Code})
		if err != nil {
			return err
		}
		t.ContentSID, t.ContentVariables = w.contentSID, string(vars)
	} else {
		text, ok := w.texts[d.Lang]
		if !ok {
			text = w.texts["en"]
		}
		t.Body = strings.ReplaceAll(text, "{code}", d.Code)
	}
	return w.sender.Send(ctx, t)
}
