package decisions_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

func TestHandler(t *testing.T) {
	v := newView(t, nil, 0)
	v.Apply(batch(run, schemas.Strategic, 1, 0, 1, strategic("shop", "gcp", "dqn")))
	v.Apply(batch(run, schemas.Tactical, 30, 0, 1, schemas.DecisionRow{App: "shop", Func: "checkout", Action: 9,
		Region: "us-west", MemoryMB: 1024, Policy: "ppo", PolicyVersion: "v7", LogProb: schemas.Some(-0.5), Value: schemas.Some(1.25)}))
	v.Apply(batch(run, schemas.Operational, 4, 0, 1, schemas.DecisionRow{App: "shop", Func: "checkout", Action: 0,
		Prewarm: 0, KeepWarmMS: 600000, Policy: "hybrid", PolicyVersion: "v1", Predicted: schemas.Some(2)}))
	v.Apply(batch(run, schemas.Operational, 4, 0, 1, oper("my app/x", "f n", 2, "reactive")))

	const (
		strategicJSON = `{"tick":1,"in_force_from":"1970-01-02T00:00:00Z","policy":"dqn","policy_version":"v1","action":0,
			"provider":"gcp","received_at":"2026-03-01T12:00:00Z"}`
		checkout = `{"run_id":"live","app":"shop","func":"checkout",
			"placement":{"provider":"gcp","region":"us-west","memory_mb":1024,"prewarm":0,"keep_warm_ms":600000,"default":[]},
			"strategic":` + strategicJSON + `,
			"tactical":{"tick":30,"in_force_from":"1970-01-02T06:00:00Z","policy":"ppo","policy_version":"v7","action":9,
				"region":"us-west","memory_mb":1024,"log_prob":-0.5,"value":1.25,"received_at":"2026-03-01T12:00:00Z"},
			"operational":{"tick":4,"in_force_from":"1970-01-01T00:01:00Z","policy":"hybrid","policy_version":"v1","action":0,
				"prewarm":0,"keep_warm_ms":600000,"predicted":2,"received_at":"2026-03-01T12:00:00Z"}}`
	)
	tests := []struct {
		name   string
		method string
		path   string
		code   int
		want   string // JSON, compared structurally
	}{
		{name: "function", method: http.MethodGet, path: "/v1/decisions/shop/checkout", code: http.StatusOK, want: checkout},
		{name: "app", method: http.MethodGet, path: "/v1/decisions/shop", code: http.StatusOK,
			want: `{"run_id":"live","app":"shop","strategic":` + strategicJSON + `,"functions":[` + checkout + `]}`},
		{name: "default fields", method: http.MethodGet, path: "/v1/decisions/shop/cart", code: http.StatusOK,
			want: `{"run_id":"live","app":"shop","func":"cart",
			"placement":{"provider":"gcp","region":"us-east","memory_mb":1024,"prewarm":0,"keep_warm_ms":0,
				"default":["region","memory_mb","prewarm","keep_warm_ms"]},
			"strategic":` + strategicJSON + `}`},
		{name: "url-decoded names", method: http.MethodGet, path: "/v1/decisions/my%20app%2Fx/f%20n", code: http.StatusOK,
			want: `{"run_id":"live","app":"my app/x","func":"f n",
			"placement":{"provider":"aws","region":"us-east","memory_mb":1024,"prewarm":2,"keep_warm_ms":0,
				"default":["provider","region","memory_mb"]},
			"operational":{"tick":4,"in_force_from":"1970-01-01T00:01:00Z","policy":"reactive","policy_version":"v1","action":2,
				"prewarm":2,"keep_warm_ms":0,"received_at":"2026-03-01T12:00:00Z"}}`},
		{name: "unknown app", method: http.MethodGet, path: "/v1/decisions/x", code: http.StatusNotFound,
			want: `{"error":"no decisions for app \"x\" in run \"live\""}`},
		{name: "function of unknown app", method: http.MethodGet, path: "/v1/decisions/x/f", code: http.StatusNotFound,
			want: `{"error":"no decisions for app \"x\" in run \"live\""}`},
		{name: "unknown function without strategic decision", method: http.MethodGet, path: "/v1/decisions/my%20app%2Fx/g", code: http.StatusNotFound,
			want: `{"error":"no decisions for function \"g\" of app \"my app/x\" in run \"live\""}`},
		{name: "post", method: http.MethodPost, path: "/v1/decisions/shop", code: http.StatusMethodNotAllowed,
			want: `{"error":"method POST not allowed: the decisions API is read-only (GET)"}`},
		{name: "delete function", method: http.MethodDelete, path: "/v1/decisions/shop/checkout", code: http.StatusMethodNotAllowed,
			want: `{"error":"method DELETE not allowed: the decisions API is read-only (GET)"}`},
		{name: "app name too long", method: http.MethodGet, path: "/v1/decisions/" + strings.Repeat("a", 257), code: http.StatusBadRequest,
			want: `{"error":"app name of 257 bytes: at most 256"}`},
		{name: "func name too long", method: http.MethodGet, path: "/v1/decisions/shop/" + strings.Repeat("%C3%A9", 129), code: http.StatusBadRequest,
			want: `{"error":"func name of 258 bytes: at most 256"}`},
		{name: "too deep", method: http.MethodGet, path: "/v1/decisions/shop/checkout/x", code: http.StatusNotFound,
			want: `{"error":"no such path \"/v1/decisions/shop/checkout/x\": want /v1/decisions/{app} or /v1/decisions/{app}/{func}"}`},
	}
	h := v.Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), tt.method, tt.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Errorf("status %d, want %d (body %s)", rec.Code, tt.code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			var got, want any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatalf("want %q: %v", tt.want, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body\n%s\nwant\n%s", rec.Body, tt.want)
			}
		})
	}
}

func TestDecisionJSONOmitsNonFinite(t *testing.T) {
	v := newView(t, nil, 0)
	nan := schemas.DecisionRow{App: "a", Func: "f", Region: "eu-west", MemoryMB: 128, LogProb: schemas.Some(math.Inf(-1)), Value: schemas.Some(0)}
	nan.Predicted = schemas.Some(math.NaN())
	v.Apply(batch(run, schemas.Tactical, 0, 0, 1, nan))
	fd, _ := v.Function("a", "f")
	b, err := json.Marshal(fd.Tactical)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "log_prob") || strings.Contains(s, "predicted") || !strings.Contains(s, `"value":0`) || strings.Contains(s, "prewarm") || strings.Contains(s, "provider") {
		t.Errorf("tactical decision JSON %s: want value only among the optional fields, no other layer's fields", s)
	}
}
