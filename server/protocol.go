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

type envelope struct {
	Event *string  `json:"event"`
	Data  *payload `json:"data"`
}

type payload struct {
	PhoneNumber *string `json:"phone_number"`
	Code        *string `json:"code"`
	Reverify    *bool   `json:"reverify"`
	Channel     *string `json:"channel"`
	Lang        *string `json:"lang"`
}

// errBadFrame is wrapped by every decoding error; the text after it is
// safe to show to the sender.
var errBadFrame = errors.New("bad request")

func badFrame(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadFrame}, a...)...)
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
	if env.Event == nil {
		return request{}, badFrame("missing event")
	}
	req := request{Event: *env.Event}
	switch req.Event {
	case eventRegister, eventVerify, eventResume:
	default:
		return request{}, badFrame("unknown event %q", truncate(req.Event, 32))
	}
	p := env.Data
	if p == nil {
		return request{}, badFrame("data must be an object")
	}
	if p.Lang != nil {
		req.Lang = languageTag(*p.Lang)
	}
	if p.PhoneNumber == nil || *p.PhoneNumber == "" {
		return req, badFrame("missing phone_number")
	}
	req.Phone = *p.PhoneNumber
	if req.Event == eventVerify {
		if p.Code == nil || *p.Code == "" {
			return req, badFrame("missing code")
		}
		req.Code = *p.Code
	}
	req.Reverify = p.Reverify != nil && *p.Reverify
	if p.Channel != nil {
		req.Channel = *p.Channel
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
