package localenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Component is a binary started by RunAs.
type Component struct {
	p   *process
	Log string
}

// Stop stops it gracefully (SIGTERM, then SIGKILL after 15 s).
func (c *Component) Stop() { c.p.stop() }

// RunAs starts bin (logging to Dir/name.log) with a token of ServiceAccount
// namespace/serviceAccount in its --kubeconfig, and waits until readyURL
// answers 200: how a test runs a component under whatever RBAC an install
// (the Helm chart's, say) gave that ServiceAccount.
func (e *Env) RunAs(ctx context.Context, name, bin, namespace, serviceAccount, readyURL string, env []string, args ...string) (*Component, error) {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, err
	}
	expiry := int64(3600)
	token, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for ServiceAccount %s/%s: %w", namespace, serviceAccount, err)
	}
	kubeconfig := filepath.Join(e.Dir, name+".kubeconfig")
	if err := writeTokenKubeconfig(kubeconfig, e.Config, token.Status.Token); err != nil {
		return nil, err
	}
	p, err := e.launch(name, bin, env, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if err != nil {
		return nil, err
	}
	c := &Component{p: p, Log: e.logPath(name)}
	if err := waitReady(ctx, readyURL, p); err != nil {
		c.Stop()
		return nil, fmt.Errorf("%s: %w (see %s)", name, err, c.Log)
	}
	return c, nil
}

// WebhookServingArgs are the manager flags that serve the admission webhooks
// the local control plane calls (its certificate and port).
func (e *Env) WebhookServingArgs() []string {
	wio := e.testEnv.WebhookInstallOptions
	return []string{"--webhook-cert-dir", wio.LocalServingCertDir, "--webhook-port", strconv.Itoa(wio.LocalServingPort)}
}

// ManagerRunning reports whether the local manager runs (KillManager stops it).
func (e *Env) ManagerRunning() bool { return e.manager != nil }
