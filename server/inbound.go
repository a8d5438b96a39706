package server

import (
	"context"
	"encoding/xml"
	"log/slog"
	"net/http"

	"verifier/verify"
)

// Texts we receive, for "text us the code".
type Inbox interface {
	Received(ctx context.Context, from, body string) (verify.Outcome, error)
}

// InboundTexts takes Twilio's incoming-message webhook: a text to our
// number from the phone being verified, carrying the code the page showed.
// It answers with TwiML: nothing, or Reply once the number is verified.
type InboundTexts struct {
	Check      SignatureChecker // nil: every request is refused
	URL        string           // the URL Twilio calls, as signed
	Inbox      Inbox
	Reply      string // the answer to a text that verified its number; "" for none
	ClientAddr func(*http.Request) string
	Log        *slog.Logger
}

// twiml is a messaging answer: an empty Response, or one Message.
type twiml struct {
	XMLName xml.Name `xml:"Response"`
	Message string   `xml:"Message,omitempty"`
}

func (in *InboundTexts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, status, problem := readTwilioForm(w, r, in.Check, in.URL)
	if problem != "" {
		in.Log.Warn("inbound", "event", "inbound", "reason", refusalReason(status), "client", in.ClientAddr(r))
		writeJSON(w, status, map[string]string{"error": problem})
		return
	}
	o, err := in.Inbox.Received(r.Context(), params["From"], params["Body"])
	if err != nil { // Twilio retries a 5xx, and the text is kept until then
		in.Log.Error("inbound", "event", "inbound", "reason", "internal_error", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	answer := twiml{}
	if o.Kind == verify.Verified {
		answer.Message = in.Reply
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(answer)
}
