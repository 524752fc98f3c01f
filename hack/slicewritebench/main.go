// Command slicewritebench measures what one key change costs in a
// KeyDigestSlice of N entries: the manager rewrites the whole slice
// (update, with its resourceVersion), and every auth proxy receives it
// whole. It times the update at the API server and until a watch of the
// slices delivers it, for each N, against N = 100 (EndpointSlice's default)
// in the same run. KeysPerSlice is chosen from it.
//
//	go run ./hack/slicewritebench
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
	"github.com/octopods/octopods-operator/hack/benchenv"
)

func main() {
	sizes := flag.String("sizes", "100,50,200,500,1000", "Slice sizes to measure; the first is the baseline.")
	changes := flag.Int("changes", 30, "Changes timed for each size.")
	flag.Parse()
	ctx := context.Background()
	env := benchenv.Start("slicewritebench")
	defer env.Stop()

	var base time.Duration
	for i, field := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(field)
		benchenv.Check(err)
		write, seen, bytes := measure(ctx, env, n, *changes)
		if i == 0 {
			base = seen
		}
		fmt.Printf("slice of %4d keys (%6.1f kB of JSON): update answered in %6s, watched in %6s, median of %d; %.2f× the %s-key slice\n",
			n, float64(bytes)/1000, write.Round(100*time.Microsecond), seen.Round(100*time.Microsecond), *changes, seen.Seconds()/base.Seconds(), strings.Split(*sizes, ",")[0])
	}
}

// measure fills one slice of n entries in a namespace of its own, then
// rotates one entry's key at a time, and returns the medians of the
// update's answer and of its delivery to a watch, and the slice's size.
func measure(ctx context.Context, env *benchenv.Env, n, changes int) (write, seen time.Duration, bytes int) {
	ns := fmt.Sprintf("slice-%d", n)
	benchenv.Check(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	slice := &octopodsv1alpha1.KeyDigestSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "keys-", Labels: map[string]string{octopodsv1alpha1.SliceLabel: octopodsv1alpha1.SliceRoleKeys}},
	}
	for i := range n {
		slice.Keys = append(slice.Keys, entry(fmt.Sprintf("ws-%06d", i), 0))
	}
	benchenv.Check(env.Client.Create(ctx, slice))
	raw, err := json.Marshal(slice)
	benchenv.Check(err)
	ww, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	benchenv.Check(err)
	w, err := ww.Watch(ctx, &octopodsv1alpha1.KeyDigestSliceList{}, client.InNamespace(ns))
	benchenv.Check(err)
	defer w.Stop()
	delivered := make(chan string, 1)
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				delivered <- ev.Object.(*octopodsv1alpha1.KeyDigestSlice).ResourceVersion
			}
		}
	}()
	var writes, seens []time.Duration
	for c := range changes {
		time.Sleep(100 * time.Millisecond)
		slice.Keys[c%n] = entry(slice.Keys[c%n].Name, c+1)
		start := time.Now()
		benchenv.Check(env.Client.Update(ctx, slice))
		writes = append(writes, time.Since(start))
		for rv := <-delivered; rv != slice.ResourceVersion; rv = <-delivered {
		}
		seens = append(seens, time.Since(start))
	}
	return median(writes), median(seens), len(raw)
}

// entry is a current key's entry, as the manager writes it, for the
// generation-th key of name.
func entry(name string, generation int) octopodsv1alpha1.SlicedKey {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", name, generation)))
	return octopodsv1alpha1.SlicedKey{Kind: "WorkspaceAPIKey", Name: name, Owner: name,
		Scope:         octopodsv1alpha1.KeyScope{Type: octopodsv1alpha1.KeyTypeWorkspace, Workspace: name},
		PublishedKeys: []octopodsv1alpha1.PublishedKey{{Digest: fmt.Sprintf("sha256:%x", sum), KeyID: fmt.Sprintf("%x", sum[:6])}}}
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
