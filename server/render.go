package server

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"verifier/verify"
)

// Server-to-client events of the protocol.
const (
	eventCodeGenerated = "code_generated"
	eventUpdate        = "update"
	eventVerified      = "verified"
	eventReset         = "reset"
	eventDevSMS        = "dev_sms"
	eventAppSetup      = "app_setup"
)

// field is a set of the data keys an event carries besides reason and
// message.
type field uint16

const (
	fPhone      field = 1 << iota // phone_number
	fPending                      // expires_in, resend_in, code_length
	fVerifiedAt                   // verified_at
	fToken                        // token, when there is one
	fAttempts                     // attempts_left
	fRetry                        // retry_after
	fCountry                      // country
	fStatus                       // status, and error_code when the provider gave one
	fBody                         // body
	fChannel                      // channel
	fInbound                      // code and send_to, when the person texts us the code
	fApp                          // qr, secret: an authenticator app's key
)

// form is how one outcome travels: its event, its reason for programs,
// the i18n key of its message for people, and its data keys.
type form struct {
	event, reason, message string
	fields                 field
}

// forms is the one table from outcomes to the protocol.
var forms = [...]form{
	verify.CodeSent:          {eventCodeGenerated, "", "", fPhone | fPending | fChannel | fInbound},
	verify.Verified:          {eventVerified, "", "", fPhone | fVerifiedAt | fToken},
	verify.InvalidPhone:      {eventUpdate, "invalid_phone", "reason_invalid_phone", 0},
	verify.NumberRejected:    {eventUpdate, "invalid_phone", "msg_number_rejected", fPhone},
	verify.CountryNotAllowed: {eventUpdate, "country_not_allowed", "reason_country_not_allowed", fPhone | fCountry},
	verify.AlreadyVerified:   {eventUpdate, "already_verified", "reason_already_verified", fPhone}, // no date for strangers
	verify.AlreadyRequested:  {eventUpdate, "already_requested", "reason_already_requested", fPhone | fPending},
	verify.CodePending:       {eventUpdate, "code_pending", "reason_code_pending", fPhone | fPending},
	verify.NothingPending:    {eventReset, "not_requested", "reason_not_requested", fPhone},
	verify.RateLimited:       {eventUpdate, "rate_limited", "reason_rate_limited", fRetry},
	verify.Locked:            {eventUpdate, "rate_limited", "msg_locked", fRetry},
	verify.SendFailed:        {eventUpdate, "send_failed", "reason_send_failed", fPhone},
	verify.SendUncertain:     {eventUpdate, "send_failed", "msg_send_uncertain", fPhone},
	verify.NotRequested:      {eventUpdate, "not_requested", "reason_not_requested", fPhone},
	verify.WrongCode:         {eventUpdate, "wrong_code", "reason_wrong_code", fPhone | fAttempts},
	verify.TooManyAttempts:   {eventReset, "too_many_attempts", "reason_too_many_attempts", fPhone},
	verify.Expired:           {eventReset, "expired", "reason_expired", fPhone},
	verify.DeliverySent:      {eventUpdate, "sms_sent", "reason_sms_sent", fPhone | fStatus},
	verify.DeliveryDone:      {eventUpdate, "sms_delivered", "reason_sms_delivered", fPhone | fStatus},
	verify.DeliveryFailed:    {eventUpdate, "sms_failed", "reason_sms_failed", fPhone | fStatus},
	verify.DevText:           {eventDevSMS, "", "", fPhone | fBody},
	verify.ConfirmFailed:     {eventUpdate, "confirm_failed", "msg_confirm_failed", fPhone},
	verify.DeliveryLate:      {eventUpdate, "sms_late", "msg_sms_late", fPhone | fChannel},
	verify.CheckFailed:       {eventUpdate, "send_failed", "msg_check_failed", fPhone}, // the contract's word for a provider that failed
	verify.AppSetup:          {eventAppSetup, "", "msg_app_setup", fPhone | fApp},
	verify.AppAdded:          {eventUpdate, "app_added", "msg_app_added", fPhone},
	verify.AppRemoved:        {eventUpdate, "app_removed", "msg_app_removed", fPhone},
	verify.AppNotSet:         {eventUpdate, "app_not_set", "msg_app_not_set", fPhone},
	verify.AppNotAllowed:     {eventUpdate, "app_not_allowed", "msg_app_not_allowed", fPhone},
	verify.AppAlreadySet:     {eventUpdate, "app_already_set", "msg_app_already_set", fPhone},
	verify.AppWrongCode:      {eventUpdate, "wrong_code", "msg_app_wrong_code", fPhone},
}

// Answers that are not the rules' outcomes.
var (
	internalError = form{eventUpdate, "send_failed", "msg_internal_error", 0}
	badRequest    = form{eventUpdate, "bad_request", "msg_bad_request", 0}
)

func formOf(k verify.Kind) form {
	if int(k) < len(forms) && forms[k].event != "" {
		return forms[k]
	}
	return internalError
}

// wire is the JSON of one frame. Pointers mark numbers that are sent even
// when zero.
type wire struct {
	Event string   `json:"event"`
	Data  wireData `json:"data"`
}

type wireData struct {
	PhoneNumber  string  `json:"phone_number,omitempty"`
	Reason       string  `json:"reason,omitempty"`
	Message      string  `json:"message,omitempty"`
	ExpiresIn    *int    `json:"expires_in,omitempty"`
	ResendIn     *int    `json:"resend_in,omitempty"`
	CodeLength   *int    `json:"code_length,omitempty"`
	AttemptsLeft *int    `json:"attempts_left,omitempty"`
	RetryAfter   *int    `json:"retry_after,omitempty"`
	Country      string  `json:"country,omitempty"`
	VerifiedAt   string  `json:"verified_at,omitempty"`
	Token        *string `json:"token,omitempty"`
	Status       string  `json:"status,omitempty"`
	ErrorCode    string  `json:"error_code,omitempty"`
	Body         string  `json:"body,omitempty"`
	Channel      string  `json:"channel,omitempty"`
	Code         string  `json:"code,omitempty"`
	SendTo       string  `json:"send_to,omitempty"`
	QR           string  `json:"qr,omitempty"`
	Secret       string  `json:"secret,omitempty"`
}

// render encodes an outcome as its event, worded in lang.
func (t *Texts) render(o verify.Outcome, lang string) ([]byte, form) {
	f := formOf(o.Kind)
	d := wireData{Reason: f.reason}
	if f.message != "" {
		d.Message = t.say(lang, f.message, o, "")
	}
	fill(&d, f.fields, o)
	return encode(f.event, d), f
}

// renderForm encodes an answer that is not an outcome, with detail for
// the message's {detail}.
func (t *Texts) renderForm(f form, lang, detail string) []byte {
	return encode(f.event, wireData{Reason: f.reason, Message: t.say(lang, f.message, verify.Outcome{}, detail)})
}

func fill(d *wireData, fields field, o verify.Outcome) {
	if fields&fPhone != 0 {
		d.PhoneNumber = o.Phone
	}
	if fields&fPending != 0 {
		d.ExpiresIn, d.ResendIn, d.CodeLength = seconds(o.ExpiresIn), seconds(o.ResendIn), &o.CodeLength
	}
	if fields&fVerifiedAt != 0 {
		d.VerifiedAt = o.VerifiedAt.UTC().Format(time.RFC3339)
	}
	if fields&fToken != 0 && o.Token != "" {
		d.Token = &o.Token
	}
	if fields&fAttempts != 0 {
		d.AttemptsLeft = &o.AttemptsLeft
	}
	if fields&fRetry != 0 {
		d.RetryAfter = seconds(o.RetryAfter)
	}
	if fields&fCountry != 0 {
		d.Country = o.Country
	}
	if fields&fStatus != 0 {
		d.Status, d.ErrorCode = o.Status, o.ErrorCode
	}
	if fields&fBody != 0 {
		d.Body = o.Body
	}
	if fields&fChannel != 0 {
		d.Channel = o.Channel
	}
	if fields&fInbound != 0 {
		d.Code, d.SendTo = o.Code, o.SendTo
	}
	if fields&fApp != 0 {
		d.QR, d.Secret = qrDataURL(o.AppURL), o.AppSecret
	}
}

func encode(event string, d wireData) []byte {
	b, err := json.Marshal(wire{event, d})
	if err != nil {
		// Only strings and numbers: a failure is a programming error.
		panic(fmt.Sprintf("encode %s: %v", event, err))
	}
	return b
}

// seconds rounds up, so a browser never shows 0 while something still
// waits. Every duration on the wire goes through it.
func seconds(d time.Duration) *int {
	n := 0
	if d > 0 {
		n = int(math.Ceil(d.Seconds()))
	}
	return &n
}

// Texts words answers for people: the i18n bundle's strings, in the
// person's language, English where it has no such language.
type Texts struct {
	langs map[string]map[string]string
}

// NewTexts takes the bundle's languages ("en" is required) and checks that
// every message the server words is there.
func NewTexts(langs map[string]map[string]string) (*Texts, error) {
	en, ok := langs["en"]
	if !ok {
		return nil, fmt.Errorf("server: no English texts")
	}
	for _, f := range append(forms[:], internalError, badRequest) {
		if _, ok := en[f.message]; f.message != "" && !ok {
			return nil, fmt.Errorf("server: no English text %q", f.message)
		}
	}
	return &Texts{langs: langs}, nil
}

// Lang picks the language texts are worded in: lang if there are texts
// for it, else English.
func (t *Texts) Lang(lang string) string {
	if _, ok := t.langs[lang]; ok {
		return lang
	}
	return "en"
}

// say words key in lang, filling {phone}, {attempts}, {time}, {country}
// and {detail}.
func (t *Texts) say(lang, key string, o verify.Outcome, detail string) string {
	text := t.word(lang, key)
	if !strings.Contains(text, "{") {
		return text
	}
	return strings.NewReplacer(
		"{phone}", o.Phone,
		"{attempts}", strconv.Itoa(o.AttemptsLeft),
		"{time}", clock(*seconds(o.RetryAfter)),
		"{country}", o.Country,
		"{detail}", detail,
	).Replace(text)
}

// word is key's text in lang, or in English.
func (t *Texts) word(lang, key string) string {
	if text, ok := t.langs[lang][key]; ok {
		return text
	}
	return t.langs["en"][key]
}

// clock shows seconds as m:ss, as the page does.
func clock(s int) string {
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
