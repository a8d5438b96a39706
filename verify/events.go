package verify

// Event names of the protocol, server to client.
const (
	EventCodeGenerated = "code_generated"
	EventUpdate        = "update"
	EventVerified      = "verified"
	EventReset         = "reset"
)

// Reasons carried by update and reset events, for programs.
const (
	ReasonInvalidPhone      = "invalid_phone"
	ReasonAlreadyVerified   = "already_verified"
	ReasonAlreadyRequested  = "already_requested"
	ReasonCodePending       = "code_pending"
	ReasonRateLimited       = "rate_limited"
	ReasonSendFailed        = "send_failed"
	ReasonNotRequested      = "not_requested"
	ReasonWrongCode         = "wrong_code"
	ReasonTooManyAttempts   = "too_many_attempts"
	ReasonExpired           = "expired"
	ReasonBadRequest        = "bad_request"
	ReasonCountryNotAllowed = "country_not_allowed"
	// Delivery reports from the SMS provider.
	ReasonSMSSent      = "sms_sent"
	ReasonSMSDelivered = "sms_delivered"
	ReasonSMSFailed    = "sms_failed"
)

// Event is one message to a browser: {"event": Name, "data": Data}.
type Event struct {
	Name string
	Data map[string]any
}

// Update builds an update event; extra holds key/value pairs.
func Update(reason, message string, extra ...any) Event {
	data := map[string]any{"reason": reason, "message": message}
	for i := 0; i+1 < len(extra); i += 2 {
		data[extra[i].(string)] = extra[i+1]
	}
	return Event{Name: EventUpdate, Data: data}
}

func reset(phone, reason, message string) Event {
	return Event{Name: EventReset, Data: map[string]any{
		"phone_number": phone, "reason": reason, "message": message,
	}}
}
