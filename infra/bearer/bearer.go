package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Parse returns the token of an Authorization header "Bearer TOKEN" (the
// scheme in any case), and whether it is one.
func Parse(header string) (string, bool) {
	const p = "Bearer "
	if len(header) <= len(p) || !strings.EqualFold(header[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(header[len(p):]), true
}

// Set is a set of accepted tokens, kept as SHA-256 hashes.
type Set [][32]byte

// NewSet returns the set of toks.
func NewSet(toks []string) Set {
	s := make(Set, len(toks))
	for i, t := range toks {
		s[i] = sha256.Sum256([]byte(t))
	}
	return s
}

// Has reports whether tok is in the set, comparing its hash with every
// member's in constant time.
func (s Set) Has(tok string) bool {
	h := sha256.Sum256([]byte(tok))
	ok := 0
	for i := range s {
		ok |= subtle.ConstantTimeCompare(h[:], s[i][:])
	}
	return ok == 1
}

// Require serves next only to requests that present a token of s; others
// get 401 with a WWW-Authenticate challenge.
func Require(s Set, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := Parse(r.Header.Get("Authorization")); !ok || !s.Has(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
			http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
