// Command cachesize measures what one object of each kind the manager
// caches costs in its informer caches: decoded as client-go decodes it,
// then trimmed and interned (controllers.TrimCached, TrimKeySecret), then
// packed (internal/packedcache). It issues a few keys
// with the real controllers on a local control plane (KUBEBUILDER_ASSETS),
// reads their lists as the informers do (JSON for custom resources,
// protobuf for Secrets), decodes each list many times, keeps the objects,
// and prints the live heap per object.
package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/controllers"
	"github.com/octopods/octopods-operator/hack/benchenv"
	"github.com/octopods/octopods-operator/internal/packedcache"
	"github.com/octopods/octopods-operator/internal/testutil"
)

const namespace = "default"

func main() {
	keys := flag.Int("keys", 20, "Workspaces with an issued key to read.")
	copies := flag.Int("copies", 500, "How many times each list is decoded and kept.")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard()) // the manager's logs are not what is measured
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := benchenv.Start("cachesize")
	defer env.Stop()
	issue(ctx, env, *keys)

	codecs := serializer.NewCodecFactory(env.Scheme)
	raw := func(path, contentType string) []byte {
		cfg := rest.CopyConfig(env.Config)
		cfg.AcceptContentTypes, cfg.NegotiatedSerializer, cfg.GroupVersion, cfg.APIPath = contentType, codecs, &corev1.SchemeGroupVersion, "/api"
		rc, err := rest.UnversionedRESTClientFor(cfg)
		benchenv.Check(err)
		b, err := rc.Get().AbsPath(path).DoRaw(ctx)
		benchenv.Check(err)
		return b
	}
	workspaces := raw("/apis/octopods.io/v1alpha1/namespaces/"+namespace+"/workspaces", "application/json")
	keyObjects := raw("/apis/octopods.io/v1alpha1/namespaces/"+namespace+"/workspaceapikeys", "application/json")
	secrets := raw("/api/v1/namespaces/"+namespace+"/secrets", "application/vnd.kubernetes.protobuf")
	decode := func(data []byte, into client.ObjectList) []any {
		obj, _, err := codecs.UniversalDeserializer().Decode(data, nil, into)
		benchenv.Check(err)
		return items(obj)
	}
	trimSecret := func(o any) any { t, err := controllers.TrimKeySecret(o); benchenv.Check(err); return t }
	trimCached := func(o any) any { t, err := controllers.TrimCached(o); benchenv.Check(err); return t }

	fmt.Printf("cachesize: bytes of live heap an object, %d objects of each kind\n", *keys**copies)
	fmt.Println("| kind | decoded | trimmed and interned | packed |")
	fmt.Println("|---|---|---|---|")
	row := func(kind string, data []byte, list func() client.ObjectList, trim, packer func(any) any) {
		decoded := perObject(*copies, func() []any { return decode(data, list()) }, nil)
		trimmed := perObject(*copies, func() []any { return decode(data, list()) }, trim)
		packed := perObject(*copies, func() []any { return decode(data, list()) }, func(o any) any { return packer(trim(o)) })
		fmt.Printf("| %s | %.0f | %.0f | %.0f |\n", kind, decoded, trimmed, packed)
	}
	row("Workspace", workspaces, func() client.ObjectList { return &octopodsv1alpha1.WorkspaceList{} }, trimCached, packer(&octopodsv1alpha1.Workspace{}))
	row("WorkspaceAPIKey", keyObjects, func() client.ObjectList { return &octopodsv1alpha1.WorkspaceAPIKeyList{} }, trimCached, packer(&octopodsv1alpha1.WorkspaceAPIKey{}))
	row("key Secret", secrets, func() client.ObjectList { return &corev1.SecretList{} }, trimSecret, packer(&corev1.Secret{}))
}

// issue creates n Workspaces with keys and waits until each is published,
// with the manager's own controllers and cache.
func issue(ctx context.Context, env *benchenv.Env, n int) {
	mgr, err := manager.New(env.Config, manager.Options{Scheme: env.Scheme, Cache: controllers.CacheOptions(controllers.NewCacheHealth()),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	benchenv.Check(err)
	benchenv.Check(controllers.Setup(mgr, controllers.Options{MaxConcurrentReconciles: 4}))
	go func() { benchenv.Check(mgr.Start(ctx)) }()
	for i := range n {
		name := fmt.Sprintf("ws-%02d", i)
		benchenv.Check(env.Client.Create(ctx, testutil.Workspace(namespace, name)))
		benchenv.Check(env.Client.Create(ctx, testutil.APIKey(namespace, name)))
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		l := &octopodsv1alpha1.WorkspaceAPIKeyList{}
		benchenv.Check(env.Client.List(ctx, l))
		published := 0
		for _, k := range l.Items {
			if len(k.Status.PublishedKeys) > 0 {
				published++
			}
		}
		if published == n {
			break
		}
		if time.Now().After(deadline) {
			panic(fmt.Sprintf("%d of %d keys published after a minute", published, n))
		}
	}
	time.Sleep(3 * time.Second) // the Workspaces' statuses follow their keys'
}

// packer packs as the manager's informer of example's type does, after the
// trim: the first object packed is the dictionary of the others.
func packer(example k8sruntime.Object) func(any) any {
	c := packedcache.NewCodec(example)
	return func(o any) any {
		p, err := c.Pack(o.(k8sruntime.Object))
		benchenv.Check(err)
		return p
	}
}

// perObject decodes copies lists, keeps every object (transformed), and
// returns the live heap each costs.
func perObject(copies int, decode func() []any, transform func(any) any) float64 {
	var kept []any
	before := benchenv.LiveHeap()
	for range copies {
		for _, o := range decode() {
			if transform != nil {
				o = transform(o)
			}
			kept = append(kept, o)
		}
	}
	after := benchenv.LiveHeap()
	n := len(kept)
	runtime.KeepAlive(kept)
	return (float64(after) - float64(before)) / float64(n)
}

// items are a typed list's objects as an informer keeps them: pointers
// into the list's array (key-type Secrets only).
func items(list any) []any {
	var out []any
	switch l := list.(type) {
	case *octopodsv1alpha1.WorkspaceList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *octopodsv1alpha1.WorkspaceAPIKeyList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.SecretList:
		for i := range l.Items {
			if l.Items[i].Type == octopodsv1alpha1.SecretType {
				out = append(out, &l.Items[i])
			}
		}
	}
	return out
}
