package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/apikey"
	"github.com/octopods/octopods-operator/internal/keysecret"
)

// sampleSize keys are sent by the client, drawn from all of them: wrk keeps
// each request preformatted, and a lookup costs the same for any key.
const sampleSize = 1000

// publishKeys creates n WorkspaceAPIKeys whose status publishes a key, as
// the operator leaves them, writes every key into nginx's map file, and
// returns a sample of the keys and as many well-formed keys never issued.
func publishKeys(ctx context.Context, env *benchenv.Env, n int) (admitted, refused []string) {
	ns := "gatewaybench"
	benchenv.Check(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	keys := make([]string, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range next {
				keys[i] = publish(ctx, env, ns, fmt.Sprintf("ws-%06d", i))
			}
		})
	}
	start := time.Now()
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	env.PublishSlices(ctx, ns)
	fmt.Printf("published %d keys in %s\n", n, time.Since(start).Round(time.Second))

	var m strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&m, "%q 1;\n", k)
	}
	benchenv.Check(os.WriteFile(env.Dir+"/keys.map", []byte(m.String()), 0o600))
	for range min(sampleSize, n) {
		admitted = append(admitted, keys[rand.IntN(n)])
		k, err := apikey.Generate()
		benchenv.Check(err)
		refused = append(refused, k)
	}
	return admitted, refused
}

// publish writes one WorkspaceAPIKey and its status, and returns its key.
// The Secret itself is not needed: the proxy reads only the slices, which
// publishKeys writes from the statuses.
func publish(ctx context.Context, env *benchenv.Env, ns, name string) string {
	key := &octopodsv1alpha1.WorkspaceAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: name}}
	benchenv.Check(env.Client.Create(ctx, key))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.EffectiveSecretName()}, Type: octopodsv1alpha1.SecretType}
	_, err := keysecret.SetNewKey(secret, apikey.Prefix, "", time.Now())
	benchenv.Check(err)
	key.Status = controllers.IssuedStatus(key, secret, time.Now())
	benchenv.Check(env.Client.Status().Update(ctx, key))
	return string(secret.Data[octopodsv1alpha1.SecretKeyAPIKey])
}
