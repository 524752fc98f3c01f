package packedcache

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"
	"k8s.io/utils/ptr"

	octopodsv1alpha1 "github.com/octopods/octopods-operator/api/v1alpha1"
)

func secret(name, owner string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"owner": owner}},
		Data:       map[string][]byte{"kept": []byte("v"), "dropped": []byte("x")},
	}
}

// recorder keeps what an event handler was given.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) record(kind string, objs ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range objs {
		s, ok := o.(*corev1.Secret)
		if !ok {
			r.events = append(r.events, kind+" of a non-Secret")
			continue
		}
		r.events = append(r.events, kind+" "+s.Name)
	}
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func TestPackedInformerStoresEncodingsAndHandsOutObjects(t *testing.T) {
	source := fcache.NewFakeControllerSource()
	source.Add(secret("a", "x"))
	newInformer := NewInformerFunc(&corev1.Secret{})
	inf := newInformer(source, &corev1.Secret{}, 0, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	if err := inf.SetTransform(func(obj any) (any, error) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return nil, errors.New("the transform was given a non-Secret")
		}
		delete(s.Data, "dropped")
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := inf.AddIndexers(toolscache.Indexers{"owner": func(obj any) ([]string, error) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return nil, errors.New("the index function was given a non-Secret")
		}
		return []string{s.Labels["owner"]}, nil
	}}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { rec.record("add", obj) },
		UpdateFunc: func(old, obj any) { rec.record("update", old, obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			rec.record("delete", obj)
		},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("not synced")
	}
	source.Add(secret("b", "y"))
	updated := secret("a", "z")
	source.Modify(updated)
	source.Delete(secret("b", "y"))
	want := []string{"add a", "add b", "update a", "update a", "delete b"}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.seen()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := rec.seen(); !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("handler saw %q, want %q", got, want)
	}

	if ns, err := Namespaces(inf); err != nil || !reflect.DeepEqual(ns, []string{"ns"}) {
		t.Fatalf("Namespaces gave %v, %v", ns, err)
	}
	// What is stored is the encoding; what is read is the transformed Secret.
	stored := inf.(*informer).SharedIndexInformer.GetIndexer().List()
	if len(stored) != 1 {
		t.Fatalf("stored %d objects, want 1", len(stored))
	}
	if _, ok := stored[0].(*Packed); !ok {
		t.Fatalf("stored a %T, want a *Packed", stored[0])
	}
	got, found, err := inf.GetIndexer().GetByKey("ns/a")
	if err != nil || !found {
		t.Fatalf("GetByKey: found %v, %v", found, err)
	}
	s, ok := got.(*corev1.Secret)
	if !ok {
		t.Fatalf("GetByKey gave a %T", got)
	}
	if s.Labels["owner"] != "z" || string(s.Data["kept"]) != "v" || s.Data["dropped"] != nil {
		t.Fatalf("read back %v %v, want the update, transformed", s.Labels, s.Data)
	}
	for name, read := range map[string]func() ([]any, error){
		"List":           func() ([]any, error) { return inf.GetStore().List(), nil },
		"ByIndex owner":  func() ([]any, error) { return inf.GetIndexer().ByIndex("owner", "z") },
		"ByIndex ns":     func() ([]any, error) { return inf.GetIndexer().ByIndex(toolscache.NamespaceIndex, "ns") },
		"Index of a":     func() ([]any, error) { return inf.GetIndexer().Index("owner", updated) },
		"old owner gone": func() ([]any, error) { return inf.GetIndexer().ByIndex("owner", "x") },
		"Each of ns":     func() ([]any, error) { return each(inf, "ns") },
		"Each of all":    func() ([]any, error) { return each(inf, "") },
	} {
		objs, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := 1
		if name == "old owner gone" {
			want = 0
		}
		if len(objs) != want {
			t.Fatalf("%s: %d objects, want %d", name, len(objs), want)
		}
		for _, o := range objs {
			if _, ok := o.(*corev1.Secret); !ok {
				t.Fatalf("%s gave a %T", name, o)
			}
		}
	}
}

func each(inf any, namespace string) ([]any, error) {
	var out []any
	err := Each(inf, namespace, func(o runtime.Object) error { out = append(out, o); return nil })
	return out, err
}

func TestOtherTypesAreNotPacked(t *testing.T) {
	source := fcache.NewFakeControllerSource()
	source.Add(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}})
	inf := NewInformerFunc(&corev1.Secret{})(source, &corev1.ConfigMap{}, 0, toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	if _, wrapped := inf.(*informer); wrapped {
		t.Fatal("a ConfigMap informer was packed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go inf.RunWithContext(ctx)
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("not synced")
	}
	// Each and Namespaces read any informer.
	if objs, err := each(inf, "ns"); err != nil || len(objs) != 1 {
		t.Fatalf("Each gave %v, %v", objs, err)
	}
	if ns, err := Namespaces(inf); err != nil || !reflect.DeepEqual(ns, []string{"ns"}) {
		t.Fatalf("Namespaces gave %v, %v", ns, err)
	}
	if _, err := Namespaces(struct{}{}); err == nil {
		t.Fatal("Namespaces read something that is no informer")
	}
}

// key is a custom resource as the manager caches it: no protobuf methods,
// so JSON; times, a Duration with its own JSON methods, conditions and
// owner references included.
func key(name string) *octopodsv1alpha1.WorkspaceAPIKey {
	at := metav1.NewTime(time.Date(2026, 12, 5, 6, 17, 53, 0, time.UTC))
	d := strings.Repeat(name[:1], 64)
	return &octopodsv1alpha1.WorkspaceAPIKey{
		TypeMeta: metav1.TypeMeta{APIVersion: "octopods.io/v1alpha1", Kind: "WorkspaceAPIKey"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(name + "-uid"), ResourceVersion: "245", Generation: 1,
			CreationTimestamp: at, Finalizers: []string{"octopods.io/revoke-key"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "octopods.io/v1alpha1", Kind: "Workspace", Name: name, UID: "w", Controller: ptr.To(true)}}},
		Spec: octopodsv1alpha1.WorkspaceAPIKeySpec{WorkspaceName: name, KeySettings: octopodsv1alpha1.KeySettings{RotationGracePeriod: &octopodsv1alpha1.Duration{Duration: 90 * time.Second}}},
		Status: octopodsv1alpha1.APIKeyStatus{SecretName: name + "-api-key", KeyID: d[:12], IssuedAt: &at,
			PublishedKeys: []octopodsv1alpha1.PublishedKey{{KeyID: d[:12], Digest: "sha256:" + d}},
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: at,
				Reason: "KeyIssued", Message: "Key " + d[:12] + " is in Secret"}}},
	}
}

// invalidDuration holds a stored value Go cannot parse, which the
// Duration's JSON methods keep (and CBOR would lose).
func invalidDuration(k *octopodsv1alpha1.WorkspaceAPIKey) *octopodsv1alpha1.WorkspaceAPIKey {
	k.Spec.RotationInterval = &octopodsv1alpha1.Duration{Invalid: "30d"}
	return k
}

func TestPackAndUnpack(t *testing.T) {
	for _, tc := range []struct {
		encoding string
		objects  []runtime.Object
		other    runtime.Object
	}{
		{"protobuf", []runtime.Object{secret("a", "x"), secret("b", "y")}, &corev1.ConfigMap{}},
		{"JSON", []runtime.Object{key("a"), key("b"), invalidDuration(key("c"))}, secret("a", "x")},
	} {
		t.Run(tc.encoding, func(t *testing.T) {
			c := NewCodec(tc.objects[0])
			for _, original := range tc.objects {
				packed, err := c.pack(original.DeepCopyObject())
				if err != nil {
					t.Fatal(err)
				}
				again, _ := c.pack(packed)
				if again != packed {
					t.Fatal("a packed object was packed again")
				}
				if got := unpack(packed); !equality.Semantic.DeepEqual(got, original) {
					t.Fatalf("unpacked %#v, want %#v", got, original)
				}
				m := packed.(*Packed).GetObjectMeta()
				if want := original.(metav1.Object); m.GetNamespace() != want.GetNamespace() || m.GetName() != want.GetName() {
					t.Fatalf("metadata %s/%s", m.GetNamespace(), m.GetName())
				}
				tomb, ok := unpack(toolscache.DeletedFinalStateUnknown{Key: "ns/a", Obj: packed}).(toolscache.DeletedFinalStateUnknown)
				if !ok || reflect.TypeOf(tomb.Obj) != reflect.TypeOf(original) {
					t.Fatalf("a tombstone's object unpacked to %T", tomb.Obj)
				}
			}
			if got, _ := c.pack(tc.other); got != tc.other {
				t.Fatal("an object of another type was packed")
			}
		})
	}
}

// The second object of a kind costs a fraction of its encoding: the first
// one's encoding is the dictionary.
func TestPackedObjectsShareTheirKindsBytes(t *testing.T) {
	c := NewCodec(&octopodsv1alpha1.WorkspaceAPIKey{})
	if _, err := c.Pack(key("a")); err != nil {
		t.Fatal(err)
	}
	enc, err := json.Marshal(key("b"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Pack(key("b"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Size()*3 > len(enc) {
		t.Fatalf("packed %d bytes of a %d-byte encoding: the dictionary is not used", p.Size(), len(enc))
	}
}

// Readers and the informer pack and unpack at once (run with -race).
func TestPackAndUnpackConcurrently(t *testing.T) {
	c := NewCodec(&octopodsv1alpha1.WorkspaceAPIKey{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			name := string(rune('a' + g))
			for range 50 {
				p, err := c.Pack(key(name))
				if err != nil {
					t.Error(err)
					return
				}
				if got := p.Unpack().(*octopodsv1alpha1.WorkspaceAPIKey); got.Name != name || got.Status.PublishedKeys[0].Digest != key(name).Status.PublishedKeys[0].Digest {
					t.Errorf("unpacked %s, want %s", got.Name, name)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The informer's own readers share one decoded object while it is recent;
// the store's readers always get their own.
func TestSharedObjectsAreDecodedOncePerEvent(t *testing.T) {
	c := NewCodec(&octopodsv1alpha1.WorkspaceAPIKey{})
	a, err := c.Pack(key("a"))
	if err != nil {
		t.Fatal(err)
	}
	if a.shared() != a.shared() || a.GetObjectMeta() != metav1.Object(&a.shared().(*octopodsv1alpha1.WorkspaceAPIKey).ObjectMeta) {
		t.Fatal("a recent object was decoded again for the informer's readers")
	}
	if a.Unpack() == a.shared() || a.Unpack() == a.Unpack() {
		t.Fatal("a store reader got a shared object")
	}
	copied := a.DeepCopyObject().(*Packed)
	if copied.shared() != a.shared() {
		t.Fatal("a copy of a packed object (the same encoding) was decoded again")
	}
	first := a.shared()
	for _, name := range []string{"b", "c", "d", "e"} {
		p, err := c.Pack(key(name))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.shared().(*octopodsv1alpha1.WorkspaceAPIKey).Name; got != name {
			t.Fatalf("shared %s for %s", got, name)
		}
	}
	if again := a.shared(); again == first || again.(*octopodsv1alpha1.WorkspaceAPIKey).Name != "a" {
		t.Fatal("the remembered objects are not the most recent ones")
	}
}
