// Package assets embeds the page and everything it loads, so the binary
// serves the front end with no files beside it and no CDN.
package assets

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS holds index.html, app.js and style.css at its root.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the folder
	}
	return sub
}
