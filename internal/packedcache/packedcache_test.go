package packedcache

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"
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

func TestOtherTypesAreNotPacked(t *testing.T) {
	inf := NewInformerFunc(&corev1.Secret{})(fcache.NewFakeControllerSource(), &corev1.ConfigMap{}, 0, toolscache.Indexers{})
	if _, wrapped := inf.(*informer); wrapped {
		t.Fatal("a ConfigMap informer was packed")
	}
}

func TestPackAndUnpack(t *testing.T) {
	p := packer{typ: reflect.TypeFor[corev1.Secret]()}
	original := secret("a", "x")
	packed, err := p.pack(original.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := p.pack(packed)
	if again != packed {
		t.Fatal("a packed object was packed again")
	}
	if got := unpack(packed); !equality.Semantic.DeepEqual(got, original) {
		t.Fatalf("unpacked %v, want %v", got, original)
	}
	if m := packed.(*Packed).GetObjectMeta(); m.GetNamespace() != "ns" || m.GetName() != "a" {
		t.Fatalf("metadata %s/%s", m.GetNamespace(), m.GetName())
	}
	tomb, ok := unpack(toolscache.DeletedFinalStateUnknown{Key: "ns/a", Obj: packed}).(toolscache.DeletedFinalStateUnknown)
	if _, isSecret := tomb.Obj.(*corev1.Secret); !ok || !isSecret {
		t.Fatalf("a tombstone's object unpacked to %T", tomb.Obj)
	}
	if cm := (&corev1.ConfigMap{}); unpack(cm) != cm {
		t.Fatal("an object never packed was changed")
	}
}
