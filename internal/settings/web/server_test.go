package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

// page is a settings page over a fake API server where the person may do
// what allowed says (verb/resource).
type page struct {
	logs   *strings.Builder
	srv    *Server
	h      http.Handler
	host   string
	login  string
	cookie *http.Cookie
	key    string
}

func newPage(t *testing.T, allowed map[string]bool) *page {
	t.Helper()
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = octopodsv1alpha1.AddToScheme(s)
	key, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	wak := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "acme", UID: "u1"},
		Spec:   octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: "acme"},
		Status: octopodsv1alpha1.WorkspaceAPIKeyStatus{KeyID: apikey.ID(key), Conditions: []metav1.Condition{{Type: "Ready", Status: "True", Reason: "KeyIssued"}}}}
	isController := true
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "acme-api-key",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "octopods.io/v1alpha1", Kind: "WorkspaceAPIKey", Name: "acme", UID: "u1", Controller: &isController}}},
		Type: octopodsv1alpha1.SecretType, Data: map[string][]byte{"api-key": []byte(key)}}
	objs := []client.Object{
		&octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "acme"}, Spec: octopodsv1alpha1.WorkspaceSpec{DisplayName: "Acme", Provider: "Intercom"}},
		&octopodsv1alpha1.Workspace{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "globex"}, Spec: octopodsv1alpha1.WorkspaceSpec{DisplayName: "Globex", Provider: "HubSpot"}},
		wak, secret,
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(wak).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if r, ok := obj.(*authorizationv1.SelfSubjectAccessReview); ok {
				a := r.Spec.ResourceAttributes
				r.Status.Allowed = allowed[a.Verb+"/"+a.Resource]
				return nil
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	logs := &strings.Builder{}
	srv, err := New(c, "team-a", slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	l, login, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	p := &page{logs: logs, srv: srv, h: srv.Handler(), host: srv.allowedHost, login: login, key: key}
	res := p.do(t, "GET", login, nil, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", res.StatusCode)
	}
	p.cookie = res.Cookies()[0]
	return p
}

// do sends a request as the page's own browser would (Host, cookie), with
// headers changed by mod.
func (p *page) do(t *testing.T, method, target string, body io.Reader, mod func(*http.Request)) *http.Response {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(method, u.RequestURI(), body)
	r.Host = p.host
	if p.cookie != nil {
		r.AddCookie(p.cookie)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Origin", "http://"+p.host)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	p.h.ServeHTTP(w, r)
	return w.Result()
}

func bodyOf(res *http.Response) string {
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

var editorRights = map[string]bool{"create/workspaceapikeys": true, "patch/workspaceapikeys": true, "get/secrets": true}

func TestLoginIsOneTimeAndTheCookieStrict(t *testing.T) {
	p := newPage(t, editorRights)
	if c := p.cookie; c.Name != SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie %+v", c)
	}
	p2 := *p
	p2.cookie = nil
	if res := p2.do(t, "GET", p.login, nil, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("second use of the login link: %d", res.StatusCode)
	}
	if res := p2.do(t, "GET", "/login?token=guess", nil, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong token: %d", res.StatusCode)
	}
}

func TestRefusals(t *testing.T) {
	p := newPage(t, editorRights)
	copyBody := func() io.Reader { return strings.NewReader(`{"namespace":"team-a","workspace":"acme"}`) }
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   func() io.Reader
		mod    func(*http.Request)
		status int
	}{
		{"no cookie", "GET", "/api/workspaces", nil, func(r *http.Request) { r.Header.Del("Cookie") }, http.StatusUnauthorized},
		{"wrong cookie", "POST", "/api/copy", copyBody, func(r *http.Request) {
			r.Header.Del("Cookie")
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: "forged"})
		}, http.StatusUnauthorized},
		{"foreign Origin", "POST", "/api/copy", copyBody, func(r *http.Request) {
			r.Header.Set("Origin", "https://evil.example")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}, http.StatusForbidden},
		{"DNS rebinding (another Host)", "GET", "/api/workspaces", nil, func(r *http.Request) { r.Host = "evil.example:8080" }, http.StatusMisdirectedRequest},
		{"a form post (not JSON)", "POST", "/api/copy", copyBody, func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, http.StatusUnsupportedMediaType},
		{"copy by GET", "GET", "/api/copy", nil, nil, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			res := p.do(t, tc.method, tc.path, body, tc.mod)
			text := bodyOf(res)
			if res.StatusCode != tc.status || strings.Contains(text, p.key[4:]) {
				t.Fatalf("status %d (want %d), body %q", res.StatusCode, tc.status, text)
			}
			if res.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatal("CORS header set")
			}
		})
	}
}

func TestHeadersAndTheKeyOnlyOnCopy(t *testing.T) {
	p := newPage(t, editorRights)
	for _, path := range []string{"/", "/static/app.js", "/api/workspaces?namespace=team-a"} {
		res := p.do(t, "GET", path, nil, nil)
		text := bodyOf(res)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, res.StatusCode, text)
		}
		if !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: headers %v", path, res.Header)
		}
		if strings.Contains(text, p.key[4:]) {
			t.Fatalf("%s carries the key", path)
		}
	}
	rows := bodyOf(p.do(t, "GET", "/api/workspaces?namespace=team-a", nil, nil))
	for _, want := range []string{`"workspace":"acme"`, `"keyID":"` + apikey.ID(p.key) + `"`, `"workspace":"globex","displayName":"Globex","provider":"HubSpot","hasKey":false`, `"can":{"create":true,"rotate":true,"copy":true}`} {
		if !strings.Contains(rows, want) {
			t.Errorf("workspaces %s lacks %s", rows, want)
		}
	}
	res := p.do(t, "POST", "/api/copy", strings.NewReader(`{"namespace":"team-a","workspace":"acme"}`), nil)
	if text := bodyOf(res); res.StatusCode != http.StatusOK || text != `{"key":"`+p.key+`"}`+"\n" {
		t.Fatalf("copy: %d %s", res.StatusCode, text)
	}
	if !strings.Contains(p.logs.String(), "API key copied") || strings.Contains(p.logs.String(), p.key[4:]) {
		t.Fatalf("the page's log must say a key was copied, never the key: %s", p.logs.String())
	}
}

func TestAViewerGetsNoButtons(t *testing.T) {
	p := newPage(t, map[string]bool{})
	rows := bodyOf(p.do(t, "GET", "/api/workspaces?namespace=team-a", nil, nil))
	if !strings.Contains(rows, `"can":{"create":false,"rotate":false,"copy":false}`) {
		t.Fatalf("viewer: %s", rows)
	}
}
