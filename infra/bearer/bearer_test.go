package bearer

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequire(t *testing.T) {
	h := Require(NewSet([]string{"a", "b"}), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for _, tc := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer c", 401}, {"Basic YTo=", 401}, {"Bearer ", 401}, {"Bearer a", 200}, {"bearer  b ", 200}} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want || (tc.want == 401) != (rec.Header().Get("WWW-Authenticate") != "") {
			t.Errorf("%q: %d (challenge %q), want %d", tc.auth, rec.Code, rec.Header().Get("WWW-Authenticate"), tc.want)
		}
	}
}
