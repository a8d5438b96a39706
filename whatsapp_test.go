package main

import (
	"encoding/json"
	"strings"
	"testing"

	"verifier/sms/faketwilio"
)

func TestAWhatsAppFlowGoesToTheWhatsAppAddress(t *testing.T) {
	ts := startServer(t, nil, map[string]string{"TWILIO_WHATSAPP_FROM": "+15005550009"})
	c := dial(t, ts.URL)
	c.registerBy(phone, "whatsapp")
	if f := c.expect("code_generated", ""); f.Data["channel"] != "whatsapp" {
		t.Fatalf("code_generated %v", f.Data)
	}
	msgs := ts.Twilio.To("whatsapp:" + phone)
	if len(msgs) != 1 || msgs[0].From != "whatsapp:+15005550009" || strings.Contains(msgs[0].Body, "@") {
		t.Fatalf("messages %+v: want one to whatsapp:%s from the WhatsApp sender, without the WebOTP line", msgs, phone)
	}
	c.verify(phone, faketwilio.Code(msgs[0].Body))
	c.expect("verified", "")
}

func TestAWhatsAppTemplateCarriesTheCodeAsItsVariable(t *testing.T) {
	ts := startServer(t, nil, map[string]string{"TWILIO_WHATSAPP_FROM": "whatsapp:+15005550009",
		"TWILIO_WHATSAPP_CONTENT_SID": "HX0123456789abcdef0123456789abcdef"})
	c := dial(t, ts.URL)
	c.registerBy(phone, "whatsapp")
	c.expect("code_generated", "")
	msgs := ts.Twilio.To("whatsapp:" + phone)
	if len(msgs) != 1 || msgs[0].ContentSID != "HX0123456789abcdef0123456789abcdef" || msgs[0].From != "whatsapp:+15005550009" {
		t.Fatalf("messages %+v", msgs)
	}
	var vars map[string]string
	if err := json.Unmarshal([]byte(msgs[0].ContentVariables), &vars); err != nil || len(vars["1"]) != 6 {
		t.Fatalf("ContentVariables %q: want {\"1\": code}", msgs[0].ContentVariables)
	}
	c.verify(phone, vars["1"])
	c.expect("verified", "")
}

func TestWhatsAppDeliveryReportsReachTheAskingPage(t *testing.T) {
	const public = "https://verify.example.com"
	ts := startServer(t, []string{"-public-url=" + public}, map[string]string{"TWILIO_WHATSAPP_FROM": "+15005550009"})
	c := dial(t, ts.URL)
	c.registerBy(phone, "whatsapp")
	c.expect("code_generated", "")
	postStatus(t, ts.URL, public, "whatsapp:"+phone, "delivered")
	if f := c.expect("update", "sms_delivered"); f.Data["phone_number"] != phone {
		t.Fatalf("report %v", f.Data)
	}
}

func TestWhatsAppIsNotOfferedWithoutASender(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := dial(t, ts.URL)
	c.registerBy(phone, "whatsapp")
	c.expect("update", "bad_request")
}
