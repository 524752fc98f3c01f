// Command cachebench measures what padded, hand-made key-type Secrets cost
// the manager's Secret cache: it creates them on a local control plane
// (KUBEBUILDER_ASSETS), then syncs the manager's cache twice in one run,
// without the Secret transform (the baseline) and with it, and prints the
// live heap each holds.
package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/hack/benchenv"
)

func main() {
	n := flag.Int("secrets", 30, "Hand-made key-type Secrets to create.")
	padding := flag.Int("padding", 900_000, "Bytes of data padding in each (the API server allows about 1 MiB), plus 100 kB in an annotation.")
	flag.Parse()
	ctx := context.Background()
	env := benchenv.Start("cachebench")
	defer env.Stop()
	cfg, scheme, c := env.Config, env.Scheme, env.Client
	data, annotation := strings.Repeat("x", *padding), strings.Repeat("y", 100_000)
	for i := range *n {
		check(c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("padded-%d", i),
				Labels: map[string]string{octopodsv1alpha1.ManagedByLabel: octopodsv1alpha1.ManagedByValue}, Annotations: map[string]string{"pad": annotation}},
			Type: octopodsv1alpha1.SecretType,
			Data: map[string][]byte{octopodsv1alpha1.SecretKeyAPIKey: []byte(data)},
		}))
	}
	fmt.Printf("cachebench: %d hand-made key-type Secrets of %d kB each\n", *n, (*padding+100_000)/1000)

	untrimmed := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Field: fields.OneTermEqualSelector("type", octopodsv1alpha1.SecretType)},
	}}
	base := heapWithCache(ctx, cfg, scheme, untrimmed)
	ours := heapWithCache(ctx, cfg, scheme, controllers.CacheOptions(controllers.NewCacheHealth()))
	fmt.Printf("cachebench: manager Secret cache live heap: without the transform %.1f MiB (baseline), with it %.1f MiB (%.2f× the baseline)\n",
		mib(base), mib(ours), float64(ours)/float64(base))
}

// heapWithCache syncs a cache of Secrets and returns the live heap while it
// holds them, less the heap before it started.
func heapWithCache(ctx context.Context, cfg *rest.Config, scheme *kruntime.Scheme, opts cache.Options) uint64 {
	before := benchenv.LiveHeap()
	opts.Scheme = scheme
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ca, err := cache.New(cfg, opts)
	check(err)
	_, err = ca.GetInformer(cctx, &corev1.Secret{})
	check(err)
	go func() { _ = ca.Start(cctx) }()
	if !ca.WaitForCacheSync(cctx) {
		panic("cache never synced")
	}
	list := &corev1.SecretList{}
	check(ca.List(cctx, list))
	after := benchenv.LiveHeap()
	runtime.KeepAlive(ca)
	if after < before {
		return 0
	}
	return after - before
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

var check = benchenv.Check
