package server

import (
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

// DeliveryStatus takes Twilio's message status callbacks and tells the
// pages waiting on the number whether the text arrived.
type DeliveryStatus struct {
	Check   SignatureChecker // nil: no Twilio credentials, so every request is refused
	URL     string           // the URL Twilio calls, as signed: the public URL, not r.Host
	Pub     verify.Publisher
	Observe func(status string) // counts accepted reports; may be nil
	Log     *slog.Logger
}

const maxStatusBody = 16 << 10

// deliveryReasons maps the statuses worth telling a person about.
var deliveryReasons = map[string]struct{ reason, message string }{
	"sent":        {verify.ReasonSMSSent, "Text sent. It should arrive in a few seconds."},
	"delivered":   {verify.ReasonSMSDelivered, "Delivered to your phone."},
	"undelivered": {verify.ReasonSMSFailed, "Not delivered: try again or check the number."},
	"failed":      {verify.ReasonSMSFailed, "Not delivered: try again or check the number."},
}

func (d *DeliveryStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxStatusBody)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not a form of at most 16 KiB"})
		return
	}
	params := make(map[string]string, len(r.PostForm))
	for k, v := range r.PostForm {
		params[k] = v[0]
	}
	if d.Check == nil || !d.Check.Validate(d.URL, params, r.Header.Get("X-Twilio-Signature")) {
		d.Log.Warn("sms status", "event", "sms_status", "reason", "bad_signature", "client", clientIP(r))
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "invalid or missing X-Twilio-Signature"})
		return
	}
	status, to := params["MessageStatus"], params["To"]
	if status == "" || !isE164(to) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "MessageStatus and To (E.164) are required"})
		return
	}
	known, ok := deliveryReasons[status]
	if d.Observe != nil {
		if !ok {
			d.Observe("other")
		} else {
			d.Observe(status)
		}
	}
	if !ok { // queued, sending, accepted...: nothing a person needs to hear
		w.WriteHeader(http.StatusNoContent)
		return
	}
	extra := []any{"phone_number", to, "status", status}
	if code := params["ErrorCode"]; code != "" && status != "sent" && status != "delivered" {
		extra = append(extra, "error_code", code)
	}
	d.Pub.Publish(to, verify.Update(known.reason, known.message, extra...), "")
	d.Log.Info("sms status", "event", "sms_status", "reason", known.reason, "phone", verify.MaskPhone(to),
		"message_sid", params["MessageSid"], "error_code", params["ErrorCode"])
	w.WriteHeader(http.StatusNoContent)
}

func isE164(s string) bool {
	return len(s) >= 8 && len(s) <= 16 && s[0] == '+' && strings.Trim(s[1:], "0123456789") == ""
}
