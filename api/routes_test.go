package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestRoutes(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	full := start(t, testConfig(), fullDeps(), nil)
	empty := start(t, testConfig(), Deps{}, nil)
	noTokenCfg := testConfig()
	noTokenCfg.APIToken = ""
	noToken := start(t, noTokenCfg, fullDeps(), nil)

	tests := map[string]struct {
		srv        *running
		method     string
		path       string
		header     map[string]string
		body       string
		wantStatus int
		wantInBody string // substring of the body
		wantHeader [2]string
	}{
		"health ok":              {srv: full, method: "GET", path: "/health", wantStatus: 200, wantInBody: `"status":"ok"`},
		"health head":            {srv: full, method: "HEAD", path: "/health", wantStatus: 200},
		"health without deps":    {srv: empty, method: "GET", path: "/health", wantStatus: 200, wantInBody: `{"status":"ok","components":{}}`},
		"health wrong method":    {srv: full, method: "POST", path: "/health", wantStatus: 405, wantInBody: "method not allowed", wantHeader: [2]string{"Allow", "GET, HEAD"}},
		"stats":                  {srv: full, method: "GET", path: "/stats", wantStatus: 200, wantInBody: `{"lines":42}`},
		"stats not wired":        {srv: empty, method: "GET", path: "/stats", wantStatus: 501, wantInBody: "/stats is not available"},
		"stats wrong method":     {srv: full, method: "DELETE", path: "/stats", wantStatus: 405},
		"config":                 {srv: full, method: "GET", path: "/config", wantStatus: 200, wantInBody: `{"lines":42}`},
		"config not wired":       {srv: empty, method: "GET", path: "/config", wantStatus: 501},
		"config wrong method":    {srv: full, method: "PUT", path: "/config", wantStatus: 405},
		"positions":              {srv: full, method: "GET", path: "/positions", wantStatus: 200, wantInBody: `{"lines":42}`},
		"positions not wired":    {srv: empty, method: "GET", path: "/positions", wantStatus: 501},
		"positions wrong method": {srv: full, method: "POST", path: "/positions", wantStatus: 405},
		"dlq stats":              {srv: full, method: "GET", path: "/dlq/stats", wantStatus: 200, wantInBody: `{"lines":42}`},
		"dlq stats not wired":    {srv: empty, method: "GET", path: "/dlq/stats", wantStatus: 501},
		"dlq stats wrong method": {srv: full, method: "POST", path: "/dlq/stats", wantStatus: 405},
		"metrics":                {srv: full, method: "GET", path: "/metrics", wantStatus: 200},
		"metrics without deps":   {srv: empty, method: "GET", path: "/metrics", wantStatus: 200},
		"metrics wrong method":   {srv: full, method: "POST", path: "/metrics", wantStatus: 405},
		"unknown path":           {srv: full, method: "GET", path: "/nope", wantStatus: 404, wantInBody: "not found"},

		"reload":                       {srv: full, method: "POST", path: "/config/reload", header: auth, wantStatus: 200, wantInBody: `{"status":"reloaded"}`},
		"reload scheme any case":       {srv: full, method: "POST", path: "/config/reload", header: map[string]string{"Authorization": "bearer  " + testToken}, wantStatus: 200},
		"reload without auth":          {srv: full, method: "POST", path: "/config/reload", wantStatus: 401, wantInBody: "missing bearer token", wantHeader: [2]string{"WWW-Authenticate", `Bearer realm="logcapturer"`}},
		"reload basic auth":            {srv: full, method: "POST", path: "/config/reload", header: map[string]string{"Authorization": "Basic " + testToken}, wantStatus: 401},
		"reload empty bearer":          {srv: full, method: "POST", path: "/config/reload", header: map[string]string{"Authorization": "Bearer "}, wantStatus: 401},
		"reload wrong token":           {srv: full, method: "POST", path: "/config/reload", header: map[string]string{"Authorization": "Bearer nope"}, wantStatus: 403, wantInBody: "invalid API token"},
		"reload token prefix":          {srv: full, method: "POST", path: "/config/reload", header: map[string]string{"Authorization": "Bearer " + testToken[:4]}, wantStatus: 403},
		"reload no token configured":   {srv: noToken, method: "POST", path: "/config/reload", header: auth, wantStatus: 403, wantInBody: "server.api_token must be set"},
		"reload no token, no header":   {srv: noToken, method: "POST", path: "/config/reload", wantStatus: 403, wantInBody: "server.api_token must be set"},
		"reload not wired":             {srv: empty, method: "POST", path: "/config/reload", header: auth, wantStatus: 501},
		"reload not wired still auths": {srv: empty, method: "POST", path: "/config/reload", wantStatus: 401},
		"reload wrong method":          {srv: full, method: "GET", path: "/config/reload", header: auth, wantStatus: 405, wantHeader: [2]string{"Allow", "POST"}},

		"reprocess empty body":       {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, wantStatus: 200, wantInBody: `"requeued":3`},
		"reprocess dry run":          {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, body: `{"sink":"loki","dry_run":true}`, wantStatus: 200, wantInBody: `"dry_run":true`},
		"reprocess without auth":     {srv: full, method: "POST", path: "/dlq/reprocess", body: `{}`, wantStatus: 401},
		"reprocess wrong token":      {srv: full, method: "POST", path: "/dlq/reprocess", header: map[string]string{"Authorization": "Bearer x"}, wantStatus: 403},
		"reprocess no token config":  {srv: noToken, method: "POST", path: "/dlq/reprocess", header: auth, wantStatus: 403},
		"reprocess not wired":        {srv: empty, method: "POST", path: "/dlq/reprocess", header: auth, wantStatus: 501},
		"reprocess wrong method":     {srv: full, method: "GET", path: "/dlq/reprocess", wantStatus: 405},
		"reprocess unknown field":    {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, body: `{"sinks":"loki"}`, wantStatus: 400, wantInBody: "unknown field"},
		"reprocess trailing data":    {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, body: `{} {}`, wantStatus: 400, wantInBody: "trailing data"},
		"reprocess not json":         {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, body: `sink=loki`, wantStatus: 400},
		"reprocess negative limit":   {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, body: `{"limit":-1}`, wantStatus: 400, wantInBody: "negative"},
		"reprocess body too large":   {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, body: `{"sink":"` + strings.Repeat("a", maxBodyBytes) + `"}`, wantStatus: 413},
		"reprocess wrong type field": {srv: full, method: "POST", path: "/dlq/reprocess", header: auth, body: `{"ids":"1"}`, wantStatus: 400},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := do(t, tc.method, "http://"+tc.srv.srv.Addr()+tc.path, tc.header, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", r.status, tc.wantStatus, r.body)
			}
			if r.status >= 400 && tc.method != "HEAD" {
				errorOf(t, r)
			}
			if tc.wantInBody != "" && !strings.Contains(r.body, tc.wantInBody) {
				t.Fatalf("body %q does not contain %q", r.body, tc.wantInBody)
			}
			if k := tc.wantHeader[0]; k != "" && r.header.Get(k) != tc.wantHeader[1] {
				t.Fatalf("header %s = %q, want %q", k, r.header.Get(k), tc.wantHeader[1])
			}
		})
	}

	// Neither the configured token nor a wrong one may reach the logs.
	for _, rs := range []*running{full, empty, noToken} {
		if logs := rs.logs.String(); strings.Contains(logs, testToken) || strings.Contains(logs, "Bearer") {
			t.Errorf("logs leak a credential:\n%s", logs)
		}
	}
}

func TestMetricsListenerRoutes(t *testing.T) {
	rs := start(t, testConfig(), fullDeps(), nil)
	base := "http://" + rs.srv.MetricsAddr()
	tests := map[string]struct {
		method, path string
		want         int
	}{
		"metrics":          {"GET", "/metrics", 200},
		"metrics head":     {"HEAD", "/metrics", 200},
		"wrong method":     {"POST", "/metrics", 405},
		"no api routes":    {"GET", "/health", 404},
		"no mutating ones": {"POST", "/config/reload", 404},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := do(t, tc.method, base+tc.path, nil, "")
			if r.status != tc.want {
				t.Fatalf("status = %d, want %d (body %q)", r.status, tc.want, r.body)
			}
			if r.status >= 400 {
				errorOf(t, r)
			}
		})
	}
}

func TestOperationErrors(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	tests := map[string]struct {
		err        error
		wantStatus int
	}{
		"invalid config":   {fmt.Errorf("config: sinks.loki.url: %w", ErrInvalid), 400},
		"conflict":         {fmt.Errorf("busy: %w", ErrConflict), 409},
		"internal failure": {errBoom, 500},
		"cancelled":        {fmt.Errorf("stopping: %w", context.Canceled), 503},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			deps := Deps{
				Reloader: reloaderFunc(func(context.Context) error { return tc.err }),
				DLQReprocessor: reprocessorFunc(func(context.Context, ReprocessRequest) (any, error) {
					return nil, tc.err
				}),
			}
			rs := start(t, testConfig(), deps, nil)
			for _, path := range []string{"/config/reload", "/dlq/reprocess"} {
				r := do(t, "POST", "http://"+rs.srv.Addr()+path, auth, "")
				if r.status != tc.wantStatus {
					t.Fatalf("%s: status = %d, want %d (body %q)", path, r.status, tc.wantStatus, r.body)
				}
				if msg := errorOf(t, r); !strings.Contains(msg, tc.err.Error()) {
					t.Fatalf("%s: error %q does not carry the cause %q", path, msg, tc.err)
				}
			}
		})
	}
}

func TestReprocessPassesRequest(t *testing.T) {
	got := make(chan ReprocessRequest, 1)
	deps := Deps{DLQReprocessor: reprocessorFunc(func(_ context.Context, req ReprocessRequest) (any, error) {
		got <- req
		return nil, nil
	})}
	rs := start(t, testConfig(), deps, nil)
	r := do(t, "POST", "http://"+rs.srv.Addr()+"/dlq/reprocess",
		map[string]string{"Authorization": "Bearer " + testToken},
		`{"sink":"loki","ids":[7,9],"limit":5,"dry_run":true}`)
	if r.status != 200 || !strings.Contains(r.body, `"status":"ok"`) {
		t.Fatalf("status %d body %q", r.status, r.body)
	}
	req := <-got
	if req.Sink != "loki" || len(req.IDs) != 2 || req.IDs[0] != 7 || req.IDs[1] != 9 || req.Limit != 5 || !req.DryRun {
		t.Fatalf("request = %+v", req)
	}
}

// A second mutating call while the first runs gets 409, not a queue.
func TestConcurrentMutationsConflict(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	deps := Deps{
		Reloader: reloaderFunc(func(context.Context) error {
			entered <- struct{}{}
			<-release
			return nil
		}),
		DLQReprocessor: reprocessorFunc(func(context.Context, ReprocessRequest) (any, error) {
			entered <- struct{}{}
			<-release
			return nil, nil
		}),
	}
	rs := start(t, testConfig(), deps, nil)
	for _, path := range []string{"/config/reload", "/dlq/reprocess"} {
		url := "http://" + rs.srv.Addr() + path
		type result struct {
			r   response
			err error
		}
		first := make(chan result, 1)
		go func() {
			r, err := doE("POST", url, auth, "")
			first <- result{r, err}
		}()
		<-entered
		second := do(t, "POST", url, auth, "")
		if second.status != 409 {
			t.Errorf("%s: second call status = %d, want 409 (body %q)", path, second.status, second.body)
		}
		release <- struct{}{}
		if res := <-first; res.err != nil || res.r.status != 200 {
			t.Errorf("%s: first call: status %d, err %v; want 200", path, res.r.status, res.err)
		}
	}
}

func TestEncodeFailureIs500(t *testing.T) {
	rs := start(t, testConfig(), Deps{Stats: snapshots{v: make(chan int)}}, nil)
	r := do(t, "GET", "http://"+rs.srv.Addr()+"/stats", nil, "")
	if r.status != 500 {
		t.Fatalf("status = %d, want 500 (body %q)", r.status, r.body)
	}
	if msg := errorOf(t, r); !strings.Contains(msg, "encode response") {
		t.Fatalf("error = %q", msg)
	}
}
