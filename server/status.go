package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"verifier/verify"
)

// SignatureChecker is what the status route needs of Twilio's request
// validator.
type SignatureChecker interface {
	Validate(url string, params map[string]string, expectedSignature string) bool
}

// Reports is what the status route needs of the rules: they pass a report
// to the connection that asked for the text.
type Reports interface {
	Delivered(ctx context.Context, report verify.Outcome) error
}

// DeliveryStatus takes Twilio's message status callbacks and tells the
// page that asked for the text whether it arrived.
type DeliveryStatus struct {
	Check   SignatureChecker // nil: no Twilio credentials, so every request is refused
	URL     string           // the URL Twilio calls, as signed: the public URL, not r.Host
	Reports Reports
	Observe func(status string) // counts accepted reports; may be nil
	// ClientAddr names the caller, for the log.
	ClientAddr func(*http.Request) string
	Log        *slog.Logger
}

const maxStatusBody = 16 << 10

// readTwilioForm reads a webhook's form, at most 16 KiB, and checks that
// Twilio signed it for url.
func readTwilioForm(w http.ResponseWriter, r *http.Request, check SignatureChecker, url string) (map[string]string, int, string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxStatusBody)
	if err := r.ParseForm(); err != nil {
		return nil, http.StatusBadRequest, "body is not a form of at most 16 KiB"
	}
	params := make(map[string]string, len(r.PostForm))
	for k, v := range r.PostForm {
		params[k] = v[0]
	}
	if check == nil || !check.Validate(url, params, r.Header.Get("X-Twilio-Signature")) {
		return nil, http.StatusForbidden, "invalid or missing X-Twilio-Signature"
	}
	return params, 0, ""
}

// refusalReason names readTwilioForm's refusals in logs.
func refusalReason(status int) string {
	if status == http.StatusForbidden {
		return "bad_signature"
	}
	return "bad_form"
}

// deliveryKinds maps the statuses worth telling a person about.
var deliveryKinds = map[string]verify.Kind{
	"sent":        verify.DeliverySent,
	"delivered":   verify.DeliveryDone,
	"undelivered": verify.DeliveryFailed,
	"failed":      verify.DeliveryFailed,
}

func (d *DeliveryStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, status, problem := d.readSigned(w, r)
	if problem != "" {
		writeJSON(w, status, map[string]string{"error": problem})
		return
	}
	d.report(r.Context(), params)
	w.WriteHeader(http.StatusNoContent)
}

// readSigned reads the form and checks Twilio's signature over it and the
// fields a report needs; a refusal says its status and why.
func (d *DeliveryStatus) readSigned(w http.ResponseWriter, r *http.Request) (map[string]string, int, string) {
	params, status, problem := readTwilioForm(w, r, d.Check, d.URL)
	if problem != "" {
		d.Log.Warn("sms status", "event", "sms_status", "reason", refusalReason(status), "client", d.ClientAddr(r))
		return nil, status, problem
	}
	// A WhatsApp message's report names whatsapp:+E.164.
	params["To"] = strings.TrimPrefix(params["To"], "whatsapp:")
	if params["MessageStatus"] == "" || !verify.IsE164(params["To"]) {
		return nil, http.StatusBadRequest, "MessageStatus and To (E.164) are required"
	}
	return params, 0, ""
}

// report tells the page that asked about a status worth hearing; queued,
// sending, accepted and the like are only counted.
func (d *DeliveryStatus) report(ctx context.Context, params map[string]string) {
	status, to := params["MessageStatus"], params["To"]
	kind, ok := deliveryKinds[status]
	if d.Observe != nil {
		counted := status
		if !ok {
			counted = "other"
		}
		d.Observe(counted)
	}
	if !ok {
		return
	}
	o := verify.Outcome{Kind: kind, Phone: to, Status: status}
	if kind == verify.DeliveryFailed {
		o.ErrorCode = params["ErrorCode"]
	}
	if err := d.Reports.Delivered(ctx, o); err != nil {
		d.Log.Error("sms status", "event", "sms_status", "reason", "store_error", "err", err)
		return
	}
	d.Log.Info("sms status", "event", "sms_status", "reason", kind.String(), "phone", verify.MaskPhone(to),
		"message_sid", params["MessageSid"], "error_code", params["ErrorCode"])
}
