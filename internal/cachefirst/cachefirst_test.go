package cachefirst

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestGet(t *testing.T) {
	ctx := context.Background()
	secret := func(name, rv string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"from": rv}}}
	}
	broken := errors.New("cache broken")
	failing := interceptor.NewClient(fake.NewClientBuilder().Build(), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return broken
		},
	})
	for _, tc := range []struct {
		name      string
		cache     client.Reader
		want      string // the "from" label read, "" for NotFound
		wantError error
	}{
		{name: "a cached object is read from the cache", cache: fake.NewClientBuilder().WithObjects(secret("a", "cache")).Build(), want: "cache"},
		{name: "a cache miss is confirmed with the API server", cache: fake.NewClientBuilder().Build(), want: "api"},
		{name: "a cache error is not hidden behind a read of the API server", cache: failing, wantError: broken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Reader{Cache: tc.cache, API: fake.NewClientBuilder().WithObjects(secret("a", "api")).Build()}
			got := &corev1.Secret{}
			err := r.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "a"}, got)
			if !errors.Is(err, tc.wantError) || (err == nil && got.Labels["from"] != tc.want) {
				t.Fatalf("read %q, error %v; want %q, error %v", got.Labels["from"], err, tc.want, tc.wantError)
			}
			missing := r.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "absent"}, &corev1.Secret{})
			if tc.wantError == nil && !apierrors.IsNotFound(missing) {
				t.Fatalf("an object neither holds: %v, want NotFound", missing)
			}
		})
	}
}
