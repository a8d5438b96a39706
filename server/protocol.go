package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Client-to-server events.
const (
	eventRegister = "register"
	eventVerify   = "verify"
	eventResume   = "resume"
	// An authenticator app for a number this connection just verified.
	eventAppAdd     = "app_add"
	eventAppConfirm = "app_confirm"
	eventAppRemove  = "app_remove"
)

// request is one decoded client frame.
type request struct {
	Event    string
	Phone    string
	Code     string
	Reverify bool
	Channel  string
	Lang     string
}

// envelope and payload hold values, not pointers: a field that is
// missing, null or empty is the same refusal, and every pointer was an
// allocation per frame. Data stays a pointer to tell a missing object.
type envelope struct {
	Event string   `json:"event"`
	Data  *payload `json:"data"`
}

type payload struct {
	PhoneNumber string `json:"phone_number"`
	Code        string `json:"code"`
	Reverify    bool   `json:"reverify"`
	Channel     string `json:"channel"`
	Lang        string `json:"lang"`
}

// errBadFrame is wrapped by every decoding error; the text after it is
// safe to show to the sender.
var errBadFrame = errors.New("bad request")

func badFrame(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadFrame}, a...)...)
}

// badDetail is what a decoding error says after "bad request: ", for the
// message's {detail}.
func badDetail(err error) string {
	return strings.TrimPrefix(err.Error(), errBadFrame.Error()+": ")
}

// decodeFrame parses {"event": ..., "data": {...}} and checks that the
// event is known and carries the fields it needs.
// The language is kept even when the frame is refused, so the refusal can
// be worded in it.
func decodeFrame(frame []byte) (request, error) {
	var env envelope
	if err := json.Unmarshal(frame, &env); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return request{}, badFrame("%s has the wrong type", truncate(typeErr.Field, 32))
		}
		return request{}, badFrame("the message is not a JSON object")
	}
	switch env.Event {
	case eventRegister, eventVerify, eventResume, eventAppAdd, eventAppConfirm, eventAppRemove:
	case "":
		return request{}, badFrame("missing event")
	default:
		return request{}, badFrame("unknown event %q", truncate(env.Event, 32))
	}
	if env.Data == nil {
		return request{}, badFrame("data must be an object")
	}
	return env.Data.request(env.Event)
}

// request checks that the payload carries what event needs.
func (p *payload) request(event string) (request, error) {
	req := request{Event: event, Lang: languageTag(p.Lang), Channel: p.Channel, Reverify: p.Reverify}
	if req.Phone = p.PhoneNumber; req.Phone == "" {
		return req, badFrame("missing phone_number")
	}
	if event == eventVerify || event == eventAppConfirm {
		if req.Code = p.Code; req.Code == "" {
			return req, badFrame("missing code")
		}
	}
	return req, nil
}

// languageTag keeps the primary subtag of a BCP 47 tag ("es-MX" -> "es"),
// or "" for anything that is not one.
func languageTag(s string) string {
	primary, _, _ := strings.Cut(strings.ToLower(s), "-")
	if len(primary) < 2 || len(primary) > 3 || strings.Trim(primary, "abcdefghijklmnopqrstuvwxyz") != "" {
		return ""
	}
	return primary
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
