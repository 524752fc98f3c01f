// Package web serves the Octopods settings page ("Workspace API Keys") on
// 127.0.0.1 for `kubectl octopods ui`. Every API call is made with the
// person's own credentials; the page only shows what RBAC allows.
package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/settings"
)

//go:embed static
var static embed.FS

// SessionHeader carries the session on every API call. The session is
// held by the page (sessionStorage, which is per origin, so per port), not
// in a cookie: a browser sends a 127.0.0.1 cookie to every port of
// 127.0.0.1, so two pages would log each other out, and any local server
// would receive a credential that can copy keys.
const SessionHeader = "X-Octopods-Session"

// contentSecurityPolicy allows the page's own script and style only: no
// inline script, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Server is the settings page of one person.
type Server struct {
	client    client.Client
	namespace string
	log       *slog.Logger
	now       func() time.Time

	mu          sync.Mutex
	loginToken  string // "" once used
	session     string
	allowedHost string // 127.0.0.1:port, set by Listen
}

// New returns the page for a person's client, starting in namespace.
func New(c client.Client, namespace string, log *slog.Logger) (*Server, error) {
	login, err := randomToken()
	if err != nil {
		return nil, err
	}
	session, err := randomToken()
	if err != nil {
		return nil, err
	}
	return &Server{client: c, namespace: namespace, log: log, now: time.Now, loginToken: login, session: session}, nil
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Listen binds 127.0.0.1 at a random port and returns the listener and the
// one-time login URL. The token is in the URL's fragment, which a browser
// never sends to a server nor as a Referer: the page posts it once to
// /api/login for the session.
func (s *Server) Listen() (net.Listener, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	s.allowedHost = l.Addr().String()
	return l, "http://" + s.allowedHost + "/#login=" + s.loginToken, nil
}

// Handler is the whole site: Host check (DNS rebinding), security headers,
// login, session, cross-origin protection, then the page and its API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(static, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, assets, "index.html")
	})
	// The page and its script hold no data: only the API needs a session.
	api := http.NewServeMux()
	api.HandleFunc("GET /api/namespaces", s.namespaces)
	api.HandleFunc("GET /api/workspaces", s.workspaces)
	api.HandleFunc("GET /api/channels", s.channels)
	api.HandleFunc("POST /api/create", s.withTarget(s.create))
	api.HandleFunc("POST /api/copy", s.withTarget(s.copyKey))
	api.HandleFunc("POST /api/rotate", s.withTarget(s.rotate))
	mux.Handle("POST /api/login", http.HandlerFunc(s.login))
	mux.Handle("/api/", s.requireSession(api))
	protected := http.NewCrossOriginProtection().Handler(mux)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Host != s.allowedHost {
			// A page of another site that resolves its own name to
			// 127.0.0.1 (DNS rebinding) arrives with that name as Host.
			http.Error(w, "wrong Host: open the URL kubectl octopods ui printed", http.StatusMisdirectedRequest)
			return
		}
		protected.ServeHTTP(w, r)
	})
}

// login exchanges the one-time token for the session, once.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req) != nil {
		http.Error(w, "send the login token as JSON", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	valid := s.loginToken != "" && subtle.ConstantTimeCompare([]byte(req.Token), []byte(s.loginToken)) == 1
	if valid {
		s.loginToken = "" // one time
	}
	s.mu.Unlock()
	if !valid {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "this login link is wrong or was used already: run kubectl octopods ui again"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"session": s.session})
}

func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(SessionHeader)), []byte(s.session)) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in: open the URL kubectl octopods ui printed"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// permissions are the buttons RBAC allows in a namespace.
type permissions struct {
	Create bool `json:"create"`
	Rotate bool `json:"rotate"`
	Copy   bool `json:"copy"`
}

func (s *Server) permissionsIn(ctx context.Context, ns string) permissions {
	return s.permissionsFor(ctx, ns, octopodsv1alpha1.WorkspaceKey)
}

// permissionsFor are the buttons the person may use on keys of kind.
func (s *Server) permissionsFor(ctx context.Context, ns string, kind octopodsv1alpha1.KeyKind) permissions {
	return permissions{
		Create: s.can(ctx, ns, "create", "octopods.io", kind.Resource),
		Rotate: s.can(ctx, ns, "patch", "octopods.io", kind.Resource),
		Copy:   s.can(ctx, ns, "get", "", "secrets"),
	}
}

// channels is the Channels view: each channel's and WhatsApp Business
// Account's key, with the buttons the person may use on each kind.
func (s *Server) channels(w http.ResponseWriter, r *http.Request) {
	ns := r.URL.Query().Get("namespace")
	if ns == "" {
		ns = s.namespace
	}
	out := map[string]any{"namespace": ns}
	for name, kind := range map[string]octopodsv1alpha1.KeyKind{"channels": octopodsv1alpha1.ChannelKey, "whatsapp": octopodsv1alpha1.WhatsAppKey} {
		rows, err := settings.OwnerRows(r.Context(), s.client, kind, ns)
		if err != nil {
			writeError(w, err)
			return
		}
		out[name] = map[string]any{"rows": rows, "can": s.permissionsFor(r.Context(), ns, kind)}
	}
	writeJSON(w, http.StatusOK, out)
}

// can asks the API server (SelfSubjectAccessReview) whether the person may.
func (s *Server) can(ctx context.Context, ns, verb, group, resource string) bool {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource},
	}}
	if err := s.client.Create(ctx, review); err != nil {
		return false
	}
	return review.Status.Allowed
}

func (s *Server) namespaces(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Current    string   `json:"current"`
		Namespaces []string `json:"namespaces"`
	}{Current: s.namespace, Namespaces: []string{s.namespace}}
	var list corev1.NamespaceList
	if err := s.client.List(r.Context(), &list); err == nil {
		out.Namespaces = out.Namespaces[:0]
		for _, n := range list.Items {
			out.Namespaces = append(out.Namespaces, n.Name)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) workspaces(w http.ResponseWriter, r *http.Request) {
	ns := r.URL.Query().Get("namespace")
	if ns == "" {
		ns = s.namespace
	}
	rows, err := settings.Rows(r.Context(), s.client, ns, nil)
	if err != nil {
		writeError(w, err)
		return
	}
	if rows == nil {
		rows = []settings.Row{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"namespace": ns, "rows": rows, "can": s.permissionsIn(r.Context(), ns)})
}

// target is what a button acts on: a workspace's key, or with target set
// ("channel/NAME", "whatsapp/NAME") a channel's or WhatsApp Business
// Account's.
type target struct {
	Namespace string `json:"namespace"`
	Workspace string `json:"workspace"`
	Target    string `json:"target"`
	owner     settings.Target
}

// withTarget reads the JSON body of a button's call: a form of another
// site cannot send application/json without a preflight, which we never
// answer.
func (s *Server) withTarget(h func(http.ResponseWriter, *http.Request, target)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "send application/json", http.StatusUnsupportedMediaType)
			return
		}
		var t target
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&t); err != nil || t.Namespace == "" || (t.Workspace == "") == (t.Target == "") {
			http.Error(w, "give namespace, and workspace or target", http.StatusBadRequest)
			return
		}
		t.owner = settings.Workspace(t.Workspace)
		if t.Target != "" {
			var err error
			if t.owner, err = settings.ParseTarget(t.Target); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		h(w, r, t)
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, t target) {
	if err := settings.CreateKey(r.Context(), s.client, t.Namespace, t.owner); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("API key created", "namespace", t.Namespace, "owner", t.owner.String())
	writeJSON(w, http.StatusCreated, map[string]string{"status": "created"})
}

// copyKey is the one response that carries a key: to this person's page,
// never cached, never logged.
func (s *Server) copyKey(w http.ResponseWriter, r *http.Request, t target) {
	key, err := settings.ReadKey(r.Context(), s.client, t.Namespace, t.owner, 5*time.Second)
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("API key copied", "namespace", t.Namespace, "owner", t.owner.String())
	writeJSON(w, http.StatusOK, map[string]string{"key": key})
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request, t target) {
	token := settings.DefaultRotationToken(s.now())
	if _, err := settings.RequestRotation(r.Context(), s.client, t.Namespace, t.owner, token); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("rotation requested", "namespace", t.Namespace, "owner", t.owner.String(), "token", token)
	writeJSON(w, http.StatusAccepted, map[string]string{"token": token})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError sends the sentence the plugin would print (it never holds a key).
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	var forbidden *settings.Forbidden
	switch {
	case errors.Is(err, context.Canceled):
		status = http.StatusServiceUnavailable
	case errors.As(err, &forbidden):
		status = http.StatusForbidden // RBAC said no: not a bad request
	}
	writeJSON(w, status, map[string]string{"error": fmt.Sprint(err)})
}
