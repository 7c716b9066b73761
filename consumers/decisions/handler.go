package decisions

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Handler returns the HTTP API of the view, to be mounted at the server's
// root (it matches full paths):
//
//   - GET /v1/decisions/{app}: the app's [AppDecisions];
//   - GET /v1/decisions/{app}/{func}: the function's [FunctionDecisions].
//
// Names are path segments, URL-decoded (a slash in a name is written %2F),
// at most [MaxNameBytes] bytes each (400 otherwise). Unknown apps and
// functions give 404 (a function of an app with a strategic decision is
// known: see [View.Function]), methods other than GET (and HEAD) 405 with an Allow
// header; errors are JSON objects {"error": "..."}.
func (v *View) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/decisions/{app}", v.methods(v.serveApp))
	mux.HandleFunc("/v1/decisions/{app}/{func}", v.methods(v.serveFunction))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q: want /v1/decisions/{app} or /v1/decisions/{app}/{func}", r.URL.Path))
	})
	return mux
}

// methods refuses every method but GET and HEAD.
func (v *View) methods(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: the decisions API is read-only (GET)", r.Method))
			return
		}
		h(w, r)
	}
}

// names reads and checks the named path values; it writes the 400 and
// returns false when one is too long.
func names(w http.ResponseWriter, r *http.Request, keys ...string) ([]string, bool) {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = r.PathValue(k)
		if len(out[i]) > MaxNameBytes {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s name of %d bytes: at most %d", k, len(out[i]), MaxNameBytes))
			return nil, false
		}
	}
	return out, true
}

func (v *View) serveApp(w http.ResponseWriter, r *http.Request) {
	n, ok := names(w, r, "app")
	if !ok {
		return
	}
	d, ok := v.App(n[0])
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no decisions for app %q in run %q", n[0], v.cfg.RunID))
		return
	}
	v.writeJSON(w, d)
}

func (v *View) serveFunction(w http.ResponseWriter, r *http.Request) {
	n, ok := names(w, r, "app", "func")
	if !ok {
		return
	}
	if !v.knowsApp(n[0]) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no decisions for app %q in run %q", n[0], v.cfg.RunID))
		return
	}
	d, ok := v.Function(n[0], n[1])
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no decisions for function %q of app %q in run %q", n[1], n[0], v.cfg.RunID))
		return
	}
	v.writeJSON(w, d)
}

func (v *View) writeJSON(w http.ResponseWriter, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		v.log.Error("encoding decisions response", "err", err)
		writeError(w, http.StatusInternalServerError, "encoding the response")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
