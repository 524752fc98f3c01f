package authproxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/secretscanning"
)

// publishOf creates a key object of kind publishing key, with its scope,
// as the operator would (the proxy suite runs no manager).
func publishOf(kind octopodsv1alpha1.KeyKind, ns, name, key string) octopodsv1alpha1.KeyObject {
	obj := kind.NewKey()
	obj.SetNamespace(ns)
	obj.SetName(name)
	obj.SetOwnerName(name)
	Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	d := apikey.DigestOf(key)
	st := obj.KeyStatus()
	st.KeyID = d.ID()
	st.PublishedKeys = []octopodsv1alpha1.PublishedKey{{KeyID: d.ID(), Digest: d.String()}}
	st.Scope = &octopodsv1alpha1.KeyScope{Type: kind.KeyType, Workspace: "acme"}
	if kind.Kind == octopodsv1alpha1.ChannelKey.Kind {
		st.Scope.Channel, st.Scope.ChannelType = name, octopodsv1alpha1.ChannelSMS
	}
	if kind.Kind == octopodsv1alpha1.WhatsAppKey.Kind {
		st.Scope.WhatsAppBusinessAccount = name
	}
	Expect(k8sClient.Status().Update(ctx, obj)).To(Succeed())
	return obj
}

// signedReport is a report body of tokens, as GitHub sends it.
func signedReport(tokens ...string) []byte {
	var report []secretscanning.Token
	for i, t := range tokens {
		report = append(report, secretscanning.Token{Token: t, Type: "octopods_api_key", URL: fmt.Sprintf("https://github.com/octo/leaky/blob/main/f%d.env", i), Source: "content"})
	}
	body, err := json.Marshal(report)
	Expect(err).NotTo(HaveOccurred())
	return body
}

var _ = Describe("Secret scanning reports", Ordered, func() {
	var (
		github   *ecdsa.PrivateKey
		proxy    *Proxy
		endpoint string
	)
	post := func(body []byte, id, signature string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set(secretscanning.HeaderKeyIdentifier, id)
		req.Header.Set(secretscanning.HeaderSignature, signature)
		res, err := httpClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = res.Body.Close() }()
		out, _ := io.ReadAll(res.Body)
		return res, out
	}
	sign := func(body []byte) string {
		s, err := secretscanning.Sign(github, body)
		Expect(err).NotTo(HaveOccurred())
		return s
	}
	leakReport := func(obj octopodsv1alpha1.KeyObject) *octopodsv1alpha1.LeakReport {
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		return obj.KeyStatus().LastLeakReport
	}

	BeforeAll(func() {
		var err error
		github, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		Expect(err).NotTo(HaveOccurred())
		doc, err := secretscanning.PublicKeysDocument("gh-1", &github.PublicKey)
		Expect(err).NotTo(HaveOccurred())
		file := filepath.Join(GinkgoT().TempDir(), "public-keys.json")
		Expect(os.WriteFile(file, doc, 0o600)).To(Succeed())
		pctx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		proxy = startProxy(pctx, restCfg, "", func(c *Config) {
			c.SecretScanningAddress, c.SecretScanningPublicKeysFile = "127.0.0.1:0", file
		})
		endpoint = "http://" + proxy.SecretScanningAddr() + SecretScanningPath
		Eventually(func() int { return get(proxy, "http://"+proxy.ProbeAddr()+"/readyz", nil).StatusCode }, syncTimeout, pollEvery).Should(Equal(http.StatusOK))
	})

	It("matches current, previous and revoked keys of all three kinds, records each match, and answers GitHub's feedback", func() {
		ns := newNamespace()
		workspaceKey, channelKey, whatsAppKey, previous, revoked := newKey(), newKey(), newKey(), newKey(), newKey()
		ws := publishOf(octopodsv1alpha1.WorkspaceKey, ns, "acme", workspaceKey)
		ch := publishOf(octopodsv1alpha1.ChannelKey, ns, "sms-1", channelKey)
		wa := publishOf(octopodsv1alpha1.WhatsAppKey, ns, "waba-1", whatsAppKey)
		inGrace := publishOf(octopodsv1alpha1.WorkspaceKey, ns, "globex", newKey())
		republish(inGrace.(*octopodsv1alpha1.WorkspaceAPIKey), newKey(), previous, time.Now().Add(time.Hour))
		gone := publishKey(k8sClient, ns, "initech", newKey())
		revoke(gone, newKey(), revoked)
		Eventually(func() int { return status(proxy, workspaceKey) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		Eventually(func() bool {
			m, _ := proxy.Index.Reported(apikey.DigestOf(revoked))
			return m != 0
		}, propagationLimit, pollEvery).Should(BeTrue())

		notOurs := "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
		wellFormedUnknown := newKey()
		body := signedReport(workspaceKey, channelKey, whatsAppKey, previous, revoked, notOurs, wellFormedUnknown)
		res, out := post(body, "gh-1", sign(body))
		Expect(res.StatusCode).To(Equal(http.StatusOK), string(out))
		var feedback []secretscanning.Feedback
		Expect(json.Unmarshal(out, &feedback)).To(Succeed())
		labels := map[string]string{}
		for _, f := range feedback {
			labels[f.TokenHash] = f.Label
			Expect(f.TokenType).To(Equal("octopods_api_key"))
		}
		hash := func(t string) string { d := apikey.DigestOf(t); return hex.EncodeToString(d[:]) }
		Expect(labels).To(Equal(map[string]string{
			hash(workspaceKey): "true_positive", hash(channelKey): "true_positive", hash(whatsAppKey): "true_positive",
			hash(previous): "true_positive", hash(revoked): "true_positive",
			hash(notOurs): "false_positive", hash(wellFormedUnknown): "false_positive",
		}))
		Expect(string(out)).NotTo(ContainSubstring(workspaceKey), "the feedback names tokens by hash only")

		for obj, key := range map[octopodsv1alpha1.KeyObject]string{ws: workspaceKey, ch: channelKey, wa: whatsAppKey, inGrace: previous, gone: revoked} {
			r := leakReport(obj)
			Expect(r).NotTo(BeNil(), "%s %s", obj.KeyKind().Kind, obj.GetName())
			Expect(r.KeyID).To(Equal(apikey.ID(key)))
			Expect(r.Source).To(Equal("github:content"))
			Expect(r.URL).To(HavePrefix("https://github.com/octo/leaky/blob/main/f"))
			Expect(r.Time.Time).To(BeTemporally("~", time.Now(), 5*time.Second))
		}
		Expect(proxyLogs.String()).NotTo(ContainSubstring(workspaceKey), "a reported token is never logged")
		Expect(proxyLogs.String()).NotTo(ContainSubstring(notOurs))
		Expect(counter(proxy, "octopods_auth_proxy_leak_reports_total", "outcome", "true_positive")).To(BeNumerically(">=", 5))
	})

	It("refuses, with 401 and no change, a report not signed by a trusted key", func() {
		ns := newNamespace()
		key := newKey()
		obj := publishOf(octopodsv1alpha1.WorkspaceKey, ns, "acme", key)
		Eventually(func() int { return status(proxy, key) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		body := signedReport(key)
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		otherSig, _ := secretscanning.Sign(other, body)
		elsewhere := signedReport(newKey())
		for name, c := range map[string]struct {
			body          []byte
			id, signature string
			status        int
		}{
			"wrong key":                          {body, "gh-1", otherSig, http.StatusUnauthorized},
			"wrong identifier":                   {body, "gh-2", sign(body), http.StatusUnauthorized},
			"no signature":                       {body, "", "", http.StatusUnauthorized},
			"altered body":                       {append(bytes.Clone(body[:len(body)-1]), ' ', ']'), "gh-1", sign(body), http.StatusUnauthorized},
			"replayed body, another's signature": {body, "gh-1", sign(elsewhere), http.StatusUnauthorized},
			"oversized body":                     {append(bytes.Repeat([]byte(" "), secretscanning.MaxBodyBytes), body...), "gh-1", "", http.StatusRequestEntityTooLarge},
		} {
			res, out := post(c.body, c.id, c.signature)
			Expect(res.StatusCode).To(Equal(c.status), "%s: %s", name, out)
			Expect(leakReport(obj)).To(BeNil(), name)
		}
		res, _ := post(body, "gh-1", sign(body))
		Expect(res.StatusCode).To(Equal(http.StatusOK))
		Expect(leakReport(obj)).NotTo(BeNil(), "the same report, signed, is recorded")
		Expect(counter(proxy, "octopods_auth_proxy_leak_reports_total", "outcome", "rejected")).To(BeNumerically(">=", 6))
	})

	It("answers a batch of 1,000 tokens well within GitHub's 30 s", func() {
		ns := newNamespace()
		var tokens []string
		for i := range 20 {
			k := newKey()
			publishKey(k8sClient, ns, fmt.Sprintf("ws-%d", i), k)
			tokens = append(tokens, k)
		}
		Eventually(func() int { return status(proxy, tokens[19]) }, propagationLimit, pollEvery).Should(Equal(http.StatusOK))
		for len(tokens) < 1000 {
			tokens = append(tokens, newKey())
		}
		body := signedReport(tokens...)
		start := time.Now()
		res, out := post(body, "gh-1", sign(body))
		took := time.Since(start)
		Expect(res.StatusCode).To(Equal(http.StatusOK))
		Expect(strings.Count(string(out), "true_positive")).To(Equal(20))
		figures.Add("secret scanning: a signed report of 1,000 tokens (20 of them live keys, each recorded in its key object) answered in %s (GitHub allows 30 s)", took.Round(time.Millisecond))
	})
})
