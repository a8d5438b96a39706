// Package assets embeds the front end, so the binary serves it with no files
// beside it and no CDN. The card's markup, the flow script and the
// languages are written once and assembled here into the page's and the
// widget's bundles.
package assets

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

//go:embed static i18n
var files embed.FS

// Bundle is the front end, assembled once at start.
type Bundle struct {
	Index   []byte // the page, with the card in it
	App     []byte // the page's script
	Widget  []byte // the embeddable widget, self-contained
	CSS     []byte
	Demo    []byte // a host page with the widget (/demo/embed)
	DemoCSS []byte
	Tap     []byte // the page a tap-to-verify link opens: an html/template
	Favicon []byte // SVG
	// The operator's live page, on the admin listener.
	Admin, AdminJS, AdminCSS []byte
	// Languages maps a language ("en") to its strings; add a language by
	// adding i18n/<code>.json.
	Languages map[string]map[string]string
}

// Options are the facts about this server that the front end shows.
type Options struct {
	// Dev is true when no SMS provider is configured (the console sender):
	// the page and the widget then say so in a banner, since no text is
	// sent to anyone.
	Dev bool
	// Calls is true when the server can place calls: only then do the page
	// and the widget offer "Call me instead".
	Calls bool
	// WhatsApp is true when the server can send codes on WhatsApp: only then
	// do the page and the widget offer "Send on WhatsApp".
	WhatsApp bool
	// Inbound is the number people text their code to ("text us the code"),
	// "" where that is not offered.
	Inbound string
	// Apps is true when numbers may add an authenticator app.
	Apps bool
}

// Load assembles the bundle from the embedded files.
func Load(opts Options) (*Bundle, error) {
	read := func(name string) []byte {
		b, err := files.ReadFile(name)
		if err != nil {
			panic(err) // embedded at build time: a missing file is a build bug
		}
		return b
	}
	langs, err := loadLanguages()
	if err != nil {
		return nil, err
	}
	card, css := read("static/card.html"), read("static/style.css")
	i18nJSON, _ := json.Marshal(langs)
	cardJSON, _ := json.Marshal(string(card))
	cssJSON, _ := json.Marshal(string(css))
	inboundJSON, _ := json.Marshal(opts.Inbound)
	prelude := fmt.Sprintf("const I18N = %s;\nconst CARD = %s;\nconst DEV = %t;\nconst CALLS = %t;\nconst WHATSAPP = %t;\n"+
		"const INBOUND = %s;\nconst APPS = %t;\n",
		i18nJSON, cardJSON, opts.Dev, opts.Calls, opts.WhatsApp, inboundJSON, opts.Apps)
	// Each bundle is one strict-mode function, so nothing leaks into a host
	// page's globals.
	wrap := func(parts ...[]byte) []byte {
		var b bytes.Buffer
		b.WriteString("(function () {\n\"use strict\";\n")
		b.WriteString(prelude)
		for _, p := range parts {
			b.Write(p)
			b.WriteString("\n")
		}
		b.WriteString("})();\n")
		return b.Bytes()
	}
	flow := read("static/flow.js")
	return &Bundle{
		Index:     bytes.Replace(read("static/index.html"), []byte("{{CARD}}"), card, 1),
		App:       wrap(flow, read("static/page.js")),
		Widget:    wrap([]byte("const CSS = "+string(cssJSON)+";"), flow, read("static/widget.js")),
		CSS:       css,
		Demo:      read("static/demo.html"),
		DemoCSS:   read("static/demo.css"),
		Tap:       read("static/tap.html"),
		Favicon:   read("static/favicon.svg"),
		Admin:     read("static/admin.html"),
		AdminJS:   read("static/admin.js"),
		AdminCSS:  read("static/admin.css"),
		Languages: langs,
	}, nil
}

func loadLanguages() (map[string]map[string]string, error) {
	entries, err := fs.ReadDir(files, "i18n")
	if err != nil {
		return nil, err
	}
	langs := map[string]map[string]string{}
	for _, e := range entries {
		code, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		b, err := files.ReadFile(path.Join("i18n", e.Name()))
		if err != nil {
			return nil, err
		}
		var strs map[string]string
		if err := json.Unmarshal(b, &strs); err != nil {
			return nil, fmt.Errorf("i18n/%s: %w", e.Name(), err)
		}
		langs[code] = strs
	}
	en, ok := langs["en"]
	if !ok {
		return nil, fmt.Errorf("i18n/en.json is missing")
	}
	for code, strs := range langs {
		for key := range en {
			if _, ok := strs[key]; !ok {
				return nil, fmt.Errorf("i18n/%s.json lacks %q", code, key)
			}
		}
	}
	return langs, nil
}

// SMSTemplates maps each language to its text body, with {code}.
func (b *Bundle) SMSTemplates() map[string]string { return b.Strings("sms_body") }

// CallTemplates maps each language to what a call says, with {digits}.
func (b *Bundle) CallTemplates() map[string]string { return b.Strings("call_say") }

// Strings maps each language to its string for key ("" where it has none).
func (b *Bundle) Strings(key string) map[string]string {
	out := map[string]string{}
	for code, strs := range b.Languages {
		out[code] = strs[key]
	}
	return out
}
