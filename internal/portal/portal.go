package portal

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Pages are the paths the portal answers with its index page, as
// http.ServeMux patterns: each is a page of app.js.
var Pages = []string{
	"/{$}",
	"/pool",
	"/failed",
	"/alerts",
	"/alerts/{activity}/{alert}",
	"/activities/{activity}/search",
	"/activities/{activity}/instances/{id}",
	"/activities/{activity}/aggregations/{aggregation}",
}

// AssetsPrefix is the path under which the portal's files are served.
const AssetsPrefix = "/assets/"

// contentSecurityPolicy lets a page load and call this origin only: no
// inline script or style, no other host, no frame around it.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is an embedded file, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the portal: index.html at every page path (Pages), the
// files under AssetsPrefix, and 404 for anything else it is given
// (NotFound answers a path that is no page with the portal's page).
type Handler struct {
	files map[string]file // by path under assets/
	index file
}

// New returns the portal's handler.
func New() *Handler {
	h := &Handler{files: map[string]file{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.files[strings.TrimPrefix(p, "assets/")] = file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("portal: read the embedded assets: " + err.Error()) // a broken build
	}
	h.index = h.files["index.html"]
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f := h.index
	if name, ok := strings.CutPrefix(r.URL.Path, AssetsPrefix); ok {
		if f, ok = h.files[name]; !ok || name == "index.html" {
			http.NotFound(w, r)
			return
		}
	}
	setHeaders(w, f)
	// Revalidated at every load (a new binary may serve new files), and
	// answered 304 while unchanged.
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// NotFound answers a request for a path that is no page of the portal
// (nor of the API) with the portal's index page and status 404: in a
// browser, the portal's router then says there is no such page, in the
// portal's frame, rather than the API's JSON error.
func (h *Handler) NotFound(w http.ResponseWriter, r *http.Request) {
	setHeaders(w, h.index)
	w.WriteHeader(http.StatusNotFound)
	if r.Method != http.MethodHead {
		w.Write(h.index.body)
	}
}

// setHeaders sets the headers of every answer of the portal's: f's
// type, and the policy that lets it load and call this origin only.
func setHeaders(w http.ResponseWriter, f file) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Content-Type", f.contentType)
	hd.Set("Cache-Control", "no-cache")
}
