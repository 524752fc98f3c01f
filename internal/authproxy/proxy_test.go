package authproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
)

var ctx = context.Background()

var _ = Describe("Refusals through the real proxy", func() {
	var ns, key string
	BeforeEach(func() {
		ns, key = newNamespace(), newKey()
		publishKey(k8sClient, ns, "acme", key)
		// Each proxy has its own watch: wait until both have seen the key.
		for _, p := range []*Proxy{reverseProxy, forwardProxy} {
			Eventually(func() int { return status(p, key) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		}
	})

	DescribeTable("answers 401 with the reason, in both modes",
		func(keys func(key string) []string, reason string) {
			res := call(reverseProxy, keys(key)...)
			Expect(res.StatusCode).To(Equal(http.StatusUnauthorized))
			Expect(res.Header.Get("Echo-X-Octopods-Auth")).To(BeEmpty(), "nothing was forwarded")

			h := http.Header{}
			for _, k := range keys(key) {
				h.Add(HeaderAuth, k)
			}
			raw := get(reverseProxy, "http://"+reverseProxy.Addr()+"/v1/messages", h)
			body, _ := io.ReadAll(raw.Body)
			Expect(string(body)).To(MatchJSON(`{"error":"` + reason + `"}`))

			fwd := call(forwardProxy, keys(key)...)
			Expect(fwd.StatusCode).To(Equal(http.StatusUnauthorized))
			Expect(fwd.Header.Get(HeaderAuthError)).To(Equal(reason))
			Expect(fwd.ContentLength).To(BeZero())
		},
		Entry("missing", func(string) []string { return nil }, OutcomeMissingKey),
		Entry("empty", func(string) []string { return []string{""} }, OutcomeMissingKey),
		Entry("repeated", func(k string) []string { return []string{k, k} }, OutcomeInvalidKey),
		Entry("Bearer-prefixed", func(k string) []string { return []string{"Bearer " + k} }, OutcomeInvalidKey),
		Entry("malformed", func(string) []string { return []string{"opk_123"} }, OutcomeInvalidKey),
		Entry("bad checksum", func(k string) []string { return []string{k[:52] + flipDigit(k[52])} }, OutcomeInvalidKey),
		Entry("unknown", func(string) []string { return []string{newKey()} }, OutcomeInvalidKey),
	)

	It("forwards an admitted request with only the verified identity headers", func() {
		h := http.Header{
			"x-octopods-auth":           {key},
			"X-Octopods-Workspace":      {"forged"},
			"X-Octopods-Workspace-Role": {"admin"},
			"X-Octopods-Key-Id":         {"forged"},
			"X-Forwarded-For":           {"203.0.113.9"},
		}
		res := get(reverseProxy, "http://"+reverseProxy.Addr()+"/v1/messages", h)
		Expect(res.StatusCode).To(Equal(http.StatusOK))
		Expect(res.Header.Get("Echo-X-Octopods-Workspace")).To(Equal("acme"))
		Expect(res.Header.Get("Echo-X-Octopods-Workspace-Namespace")).To(Equal(ns))
		Expect(res.Header.Get("Echo-X-Octopods-Key-Id")).To(Equal(apikey.ID(key)))
		Expect(res.Header.Values("Echo-X-Octopods-Workspace")).To(HaveLen(1))
		Expect(res.Header.Get("Echo-X-Octopods-Auth")).To(BeEmpty())
		Expect(res.Header.Get("Echo-X-Octopods-Workspace-Role")).To(BeEmpty())
		Expect(res.Header.Get("Echo-X-Forwarded-For")).To(Equal("127.0.0.1"))
	})

	It("answers forward-auth with 200, the identity headers and no body", func() {
		res := call(forwardProxy, key)
		Expect(res.StatusCode).To(Equal(http.StatusOK))
		Expect(res.Header.Get(HeaderWorkspace)).To(Equal("acme"))
		Expect(res.Header.Get(HeaderWorkspaceNamespace)).To(Equal(ns))
		Expect(res.Header.Get(HeaderKeyID)).To(Equal(apikey.ID(key)))
	})

	It("logs refusals without the key", func() {
		Expect(status(reverseProxy, key[:52]+flipDigit(key[52]))).To(Equal(http.StatusUnauthorized))
		Expect(proxyLogs.String()).To(ContainSubstring(`"msg":"request refused"`))
		Expect(proxyLogs.String()).NotTo(ContainSubstring(key[4:47]))
	})
})

var _ = Describe("Propagation of published keys", func() {
	It("admits a new key, and refuses a rotated-away, deleted or expired one, each within 1s", func() {
		ns := newNamespace()
		first := newKey()
		wak := publishKey(k8sClient, ns, "acme", first)
		added := timeUntil(func() bool { return status(reverseProxy, first) == http.StatusOK }, propagationLimit)

		second := newKey()
		republish(wak, second, "", time.Time{})
		rotated := timeUntil(func() bool { return status(reverseProxy, first) == http.StatusUnauthorized }, propagationLimit)
		Expect(status(reverseProxy, second)).To(Equal(http.StatusOK))

		// Rotation with a grace period: the previous key works until its
		// validUntil, then stops without any API change.
		third := newKey()
		until := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
		republish(wak, third, second, until)
		Eventually(func() int { return status(reverseProxy, third) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Expect(status(reverseProxy, second)).To(Equal(http.StatusOK), "previous key works during its grace period")
		Eventually(func() int { return status(reverseProxy, second) }, time.Until(until)+propagationLimit, pollEvery).Should(Equal(http.StatusUnauthorized))
		expired := time.Since(until)

		Expect(k8sClient.Delete(ctx, wak)).To(Succeed())
		deleted := timeUntil(func() bool { return status(reverseProxy, third) == http.StatusUnauthorized }, propagationLimit)

		figures.Add("proxy propagation: new key admitted %s, rotated-away key refused %s, grace-expired key refused %s after expiry, deleted key refused %s (limit 1s)",
			added.Round(10*time.Microsecond), rotated.Round(10*time.Microsecond), expired.Round(10*time.Microsecond), deleted.Round(10*time.Microsecond))
	})

	It("believes only published keys: never a Secret, a key being deleted, or a previous key past rotatedAt + 24h", func() {
		ns := newNamespace()
		// A Secret of the key type with every label the operator sets mints nothing.
		forged := newKey()
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged-api-key",
				Labels:      map[string]string{octopodsv1alpha1.WorkspaceLabel: "forged", octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue},
				Annotations: map[string]string{octopodsv1alpha1.KeyIDAnnotation: apikey.ID(forged)}},
			Type: octopodsv1alpha1.SecretType,
			Data: map[string][]byte{octopodsv1alpha1.SecretKeyAPIKey: []byte(forged)},
		})).To(Succeed())

		// A previous key published as valid until 2099 by a rotation two
		// days ago is capped at rotatedAt + 24h: refused.
		current, previous := newKey(), newKey()
		wak := publishKey(k8sClient, ns, "acme", current)
		original := wak.DeepCopy()
		twoDaysAgo := metav1.NewTime(time.Now().Add(-48 * time.Hour))
		wak.Status.RotatedAt = &twoDaysAgo
		d := apikey.DigestOf(previous)
		wak.Status.PublishedKeys = append(wak.Status.PublishedKeys, octopodsv1alpha1.PublishedKey{KeyID: d.ID(), Digest: d.String(),
			ValidUntil: &metav1.Time{Time: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}})
		Expect(k8sClient.Status().Patch(ctx, wak, client.MergeFrom(original))).To(Succeed())
		Eventually(func() int { return status(reverseProxy, current) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Expect(status(reverseProxy, previous)).To(Equal(http.StatusUnauthorized))
		Expect(status(reverseProxy, forged)).To(Equal(http.StatusUnauthorized))

		// A WorkspaceAPIKey held in Terminating (someone's finalizer) stops
		// admitting at once, before the operator unpublishes anything.
		original = wak.DeepCopy()
		wak.Finalizers = []string{"example.com/hold"}
		Expect(k8sClient.Patch(ctx, wak, client.MergeFrom(original))).To(Succeed())
		Expect(k8sClient.Delete(ctx, wak)).To(Succeed())
		Eventually(func() int { return status(reverseProxy, current) }, propagationLimit, pollEvery).Should(Equal(http.StatusUnauthorized))
		original = wak.DeepCopy()
		wak.Finalizers = nil
		Expect(k8sClient.Patch(ctx, wak, client.MergeFrom(original))).To(Succeed())
	})
})

var _ = Describe("lastUsedTime", func() {
	var key string
	var wak *octopodsv1alpha1.WorkspaceAPIKey
	BeforeEach(func() {
		key = newKey()
		wak = publishKey(k8sClient, newNamespace(), "acme", key)
	})

	It("lands in the WorkspaceAPIKey status in batches, not per request", func() {
		// Count this key's status writes, not the proxy's: other specs'
		// keys are flushed meanwhile too. Watched before the first use: a
		// key in constant use is written once per refresh interval (an hour
		// here), so the first use's write may be the only one.
		wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &octopodsv1alpha1.WorkspaceAPIKeyList{}, client.InNamespace(wak.Namespace), client.MatchingFields{"metadata.name": wak.Name})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		start := time.Now()
		Eventually(func() int { return status(reverseProxy, key) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		// Uses are recorded in whole seconds: requests in the first use's
		// second would add nothing new.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		for range 200 {
			Expect(status(reverseProxy, key)).To(Equal(http.StatusOK))
		}
		writes := 0
		Eventually(func(g Gomega) {
			for drained := false; !drained; {
				select {
				case ev := <-w.ResultChan():
					if ev.Type == watch.Modified {
						writes++
					}
				default:
					drained = true
				}
			}
			got := &octopodsv1alpha1.WorkspaceAPIKey{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wak), got)).To(Succeed())
			g.Expect(got.Status.LastUsedTime).NotTo(BeNil())
			g.Expect(got.Status.LastUsedTime.Time).To(BeTemporally("~", time.Now(), 5*time.Second))
			g.Expect(writes).To(BeNumerically(">=", 1))
		}, flushDeadline, pollEvery).Should(Succeed())
		elapsed := time.Since(start)
		Expect(writes).To(BeNumerically("<=", float64(elapsed/flushInterval)+1), "at most one write per flush interval")
		Expect(counter(reverseProxy, "octopods_auth_proxy_allowed_requests_total", "namespace", wak.Namespace, "workspace", "acme")).To(BeNumerically(">=", 201))
	})

	It("records the previous key's uses apart during a grace period", func() {
		Eventually(func() int { return status(reverseProxy, key) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		// Rotated only once that use is written as lastUsedTime: the old
		// key's next use, often in the same second, must still be written
		// as previousKeyLastUsedTime, another field.
		Eventually(func(g Gomega) {
			got := &octopodsv1alpha1.WorkspaceAPIKey{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wak), got)).To(Succeed())
			g.Expect(got.Status.LastUsedTime).NotTo(BeNil())
		}, flushDeadline, pollEvery).Should(Succeed())
		next := newKey()
		republish(wak, next, key, time.Now().Add(time.Hour))
		Eventually(func() int { return status(reverseProxy, next) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Expect(status(reverseProxy, key)).To(Equal(http.StatusOK), "the previous key, in its grace period")
		Eventually(func(g Gomega) {
			got := &octopodsv1alpha1.WorkspaceAPIKey{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wak), got)).To(Succeed())
			g.Expect(got.Status.PreviousKeyLastUsedTime).NotTo(BeNil())
			g.Expect(got.Status.PreviousKeyLastUsedTime.Time).To(BeTemporally("~", time.Now(), 5*time.Second))
			g.Expect(got.Status.LastUsedTime).NotTo(BeNil())
		}, flushDeadline, pollEvery).Should(Succeed())
	})

	It("never moves backwards: a replica flushing an older use is superseded", func() {
		// Another replica, or one whose clock runs ahead, recorded a later use.
		later := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
		wak.Status.LastUsedTime = &later
		Expect(k8sClient.Status().Update(ctx, wak)).To(Succeed())

		supersededBefore := counter(reverseProxy, "octopods_auth_proxy_last_used_writes_total", "result", "superseded")
		Eventually(func() int { return status(reverseProxy, key) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Eventually(func() float64 {
			return counter(reverseProxy, "octopods_auth_proxy_last_used_writes_total", "result", "superseded")
		}, flushDeadline, pollEvery).Should(BeNumerically(">", supersededBefore))

		got := &octopodsv1alpha1.WorkspaceAPIKey{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wak), got)).To(Succeed())
		Expect(got.Status.LastUsedTime.Time).To(BeTemporally("==", later.Time))
	})
})

var _ = Describe("Readiness", func() {
	It("answers 503 to everything, and fails /readyz, until the first sync", func() {
		unreachable := rest.CopyConfig(restCfg)
		unreachable.Host = "https://127.0.0.1:1" // nothing listens there
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := startProxy(ctx, unreachable, "")
		Consistently(func(g Gomega) {
			g.Expect(get(p, "http://"+p.ProbeAddr()+"/readyz", nil).StatusCode).To(Equal(http.StatusServiceUnavailable))
			g.Expect(status(p, newKey())).To(Equal(http.StatusServiceUnavailable))
			g.Expect(get(p, "http://"+p.ProbeAddr()+"/healthz", nil).StatusCode).To(Equal(http.StatusOK))
		}, time.Second, 100*time.Millisecond).Should(Succeed())
	})
})

var _ = Describe("Losing the API server", Serial, func() {
	It("keeps admitting the last known keys and reports the cache as stale", func() {
		// A control plane of its own, so stopping it leaves the suite's alone.
		env := &envtest.Environment{ControlPlaneStopTimeout: 3 * time.Second,
			CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
		cfg, err := env.Start()
		Expect(err).NotTo(HaveOccurred())
		// A failing spec must not leave its control plane running.
		DeferCleanup(func() { _ = env.Stop() })
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		pctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		maxStaleness := probeInterval + 2*time.Second
		startSliceWriter(pctx, cfg)
		p := startProxy(pctx, cfg, "", func(c *Config) { c.MaxKeyStaleness = maxStaleness })
		Eventually(func() int { return get(p, "http://"+p.ProbeAddr()+"/readyz", nil).StatusCode }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))
		Eventually(func() healthpb.HealthCheckResponse_ServingStatus { return grpcHealth(p) }, 2*time.Second, pollEvery).Should(Equal(healthpb.HealthCheckResponse_SERVING))

		key := newKey()
		publishKey(c, "default", "acme", key)
		// Not a propagation figure: this control plane's slice writer has
		// just started (the suite's own is timed with a warm one).
		Eventually(func() int { return status(p, key) }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))

		// kube-apiserver stops listening at once but may outlive the stop
		// timeout while it drains; what matters is that it is unreachable.
		_ = env.ControlPlane.APIServer.Stop()
		stoppedAt := time.Now()
		Expect(c.List(ctx, &octopodsv1alpha1.WorkspaceAPIKeyList{})).NotTo(Succeed(), "the API server is gone")
		Consistently(func() int { return status(p, key) }, 2*probeInterval, 100*time.Millisecond).Should(Equal(http.StatusOK))
		Expect(status(p, newKey())).To(Equal(http.StatusUnauthorized))
		// Past --max-key-staleness the platform is told: /readyz fails and
		// gRPC health says NOT_SERVING; what still arrives is answered.
		Eventually(func() int { return get(p, "http://"+p.ProbeAddr()+"/readyz", nil).StatusCode }, maxStaleness, pollEvery).Should(Equal(http.StatusServiceUnavailable))
		Eventually(func() healthpb.HealthCheckResponse_ServingStatus { return grpcHealth(p) }, 2*time.Second, pollEvery).Should(Equal(healthpb.HealthCheckResponse_NOT_SERVING))
		Expect(status(p, key)).To(Equal(http.StatusOK))
		staleness := counter(p, "octopods_auth_proxy_key_cache_staleness_seconds")
		Expect(staleness).To(BeNumerically(">=", time.Since(stoppedAt).Seconds()-probeInterval.Seconds()-1))
		figures.Add("proxy with its API server stopped for %s: the known key still admitted; staleness metric %.1fs", time.Since(stoppedAt).Round(time.Second), staleness)

		metrics := get(p, "http://"+p.MetricsAddr()+"/metrics", nil)
		body, _ := io.ReadAll(metrics.Body)
		Expect(string(body)).To(ContainSubstring("octopods_auth_proxy_keys_loaded 1"))
		Expect(string(body)).NotTo(ContainSubstring(key[4:47]))
		_ = env.ControlPlane.Etcd.Stop()
	})
})

var _ = Describe("HTTPS", func() {
	It("serves traffic over TLS with the given certificate, and picks up a renewed one without a restart", func() {
		dir := GinkgoT().TempDir()
		pool := x509.NewCertPool()
		certFile, keyFile := selfSignedCert(dir, 1, pool)
		pctx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		p := startProxy(pctx, restCfg, "", func(c *Config) {
			c.TLSCertFile, c.TLSKeyFile, c.TLSCheckInterval = certFile, keyFile, certCheckInterval
		})

		ns, key := newNamespace(), newKey()
		publishKey(k8sClient, ns, "acme", key)
		tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		// served returns the status and the serial of the certificate served.
		served := func() (int, int64) {
			tlsClient.CloseIdleConnections() // a new handshake each time
			req, _ := http.NewRequest(http.MethodGet, "https://"+p.Addr()+"/", nil)
			req.Header.Set(HeaderAuth, key)
			res, err := tlsClient.Do(req)
			if err != nil {
				return 0, 0
			}
			_ = res.Body.Close()
			return res.StatusCode, res.TLS.PeerCertificates[0].SerialNumber.Int64()
		}
		Eventually(func() int { code, _ := served(); return code }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))
		_, serial := served()
		Expect(serial).To(BeEquivalentTo(1))

		// A renewal, as the kubelet publishes one: new files swapped in.
		renewed := filepath.Join(dir, "renewed")
		Expect(os.Mkdir(renewed, 0o700)).To(Succeed())
		newCert, newKey := selfSignedCert(renewed, 2, pool)
		Expect(os.Rename(newKey, keyFile)).To(Succeed())
		Expect(os.Rename(newCert, certFile)).To(Succeed())
		Eventually(func() int64 { _, s := served(); return s }, 3*certCheckInterval+time.Second, pollEvery).Should(BeEquivalentTo(2))

		res, err := httpClient.Get("http://" + p.Addr() + "/")
		Expect(err).NotTo(HaveOccurred())
		Expect(res.StatusCode).To(Equal(http.StatusBadRequest), "plain HTTP is refused by the TLS listener")
		_ = res.Body.Close()

		// gRPC ext_authz serves the same, renewed, certificate.
		conn, err := grpc.NewClient(p.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = conn.Close() }()
		var peerInfo peer.Peer
		check, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{"x-octopods-auth": key}}}}}, grpc.Peer(&peerInfo))
		Expect(err).NotTo(HaveOccurred())
		Expect(check.GetOkResponse()).NotTo(BeNil())
		tlsInfo, ok := peerInfo.AuthInfo.(credentials.TLSInfo)
		Expect(ok).To(BeTrue(), "the gRPC connection is TLS")
		Expect(tlsInfo.State.PeerCertificates[0].SerialNumber.Int64()).To(BeEquivalentTo(2))
	})
})

var _ = Describe("gRPC client certificates (--grpc-client-ca-file)", func() {
	It("admits only callers whose certificate chains to the CA file", func() {
		dir := GinkgoT().TempDir()
		serverPool, clientPool, strangerPool := x509.NewCertPool(), x509.NewCertPool(), x509.NewCertPool()
		certFile, keyFile := selfSignedCert(dir, 1, serverPool)
		clientDir, strangerDir := filepath.Join(dir, "envoy"), filepath.Join(dir, "stranger")
		Expect(os.Mkdir(clientDir, 0o700)).To(Succeed())
		Expect(os.Mkdir(strangerDir, 0o700)).To(Succeed())
		clientCert, clientKey := selfSignedCert(clientDir, 7, clientPool)
		strangerCert, strangerKey := selfSignedCert(strangerDir, 8, strangerPool)
		pctx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		p := startProxy(pctx, restCfg, "", func(c *Config) {
			c.TLSCertFile, c.TLSKeyFile, c.GRPCClientCAFile = certFile, keyFile, clientCert
		})
		ns, key := newNamespace(), newKey()
		publishKey(k8sClient, ns, "acme", key)

		check := func(certs ...tls.Certificate) (codes.Code, error) {
			conn, err := grpc.NewClient(p.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(
				&tls.Config{RootCAs: serverPool, MinVersion: tls.VersionTLS12, Certificates: certs})))
			Expect(err).NotTo(HaveOccurred())
			defer func() { _ = conn.Close() }()
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			defer ccancel()
			res, err := authv3.NewAuthorizationClient(conn).Check(cctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Headers: map[string]string{"x-octopods-auth": key}}}}})
			return codes.Code(res.GetStatus().GetCode()), err
		}
		envoy, err := tls.LoadX509KeyPair(clientCert, clientKey)
		Expect(err).NotTo(HaveOccurred())
		stranger, err := tls.LoadX509KeyPair(strangerCert, strangerKey)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() (codes.Code, error) { return check(envoy) }, syncTimeout, pollEvery).Should(Equal(codes.OK))
		_, err = check()
		Expect(err).To(HaveOccurred(), "no client certificate")
		_, err = check(stranger)
		Expect(err).To(HaveOccurred(), "a certificate from another CA")

		_, err = New(Config{GRPCAddress: "127.0.0.1:0", GRPCClientCAFile: clientCert}, restCfg, slog.New(slog.NewJSONHandler(GinkgoWriter, nil)))
		Expect(err).To(MatchError(ContainSubstring("--grpc-client-ca-file needs")))
	})
})

// selfSignedCert writes a certificate for 127.0.0.1 with the given serial,
// adds it to pool, and returns its files.
func selfSignedCert(dir string, serial int64, pool *x509.CertPool) (string, string) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "auth-proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(priv)
	Expect(err).NotTo(HaveOccurred())
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	Expect(os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)).To(Succeed())
	Expect(os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)).To(Succeed())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	pool.AddCert(cert)
	return certFile, keyFile
}
