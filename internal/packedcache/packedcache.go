// Package packedcache keeps the objects of an informer as their protobuf
// encoding instead of decoded Go structs, and hands decoded copies to
// whoever reads the informer: its indexer and store, its event handlers and
// its index functions.
//
// A decoded object costs several times its encoding: every string, map and
// pointer of its ObjectMeta is an allocation of its own, and a map of even
// one entry takes a whole group of eight slots. The manager caches one key
// Secret per key, read once per reconcile, so at 100,000 keys the
// difference is about 150 MB, while a decode costs a few microseconds.
package packedcache

import (
	"fmt"
	"reflect"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
)

// Message is a Kubernetes API type with generated protobuf methods, as every
// built-in type has (corev1.Secret, ...).
type Message interface {
	runtime.Object
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// NewInformerFunc returns what controller-runtime's cache.Options.NewInformer
// takes: informers of the types of packed are packed, the others are
// client-go's, unchanged.
func NewInformerFunc(packed ...Message) func(toolscache.ListerWatcher, runtime.Object, time.Duration, toolscache.Indexers) toolscache.SharedIndexInformer {
	types := map[reflect.Type]bool{}
	for _, m := range packed {
		types[reflect.TypeOf(m)] = true
	}
	return func(lw toolscache.ListerWatcher, example runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
		if !types[reflect.TypeOf(example)] {
			return toolscache.NewSharedIndexInformer(lw, example, resync, indexers)
		}
		p := packer{typ: reflect.TypeOf(example).Elem()}
		inner := toolscache.NewSharedIndexInformer(lw, example, resync, unpacking(indexers))
		i := &informer{SharedIndexInformer: inner, packer: p}
		_ = i.SetTransform(nil) // packs even if no one sets a transform; cannot fail before Run
		return i
	}
}

// Packed is one object as its protobuf encoding. It is a runtime.Object
// and a metav1.ObjectMetaAccessor, so that the informer's own machinery
// (keys, the namespace index, resource versions) works on it unchanged.
type Packed struct {
	data []byte
	typ  reflect.Type
}

// GetObjectKind implements runtime.Object; a packed object has no kind.
func (p *Packed) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. The encoding is never changed in
// place, so a copy may share it.
func (p *Packed) DeepCopyObject() runtime.Object { c := *p; return &c }

// GetObjectMeta decodes the object for its metadata.
func (p *Packed) GetObjectMeta() metav1.Object {
	o, ok := p.Unpack().(metav1.ObjectMetaAccessor)
	if !ok {
		return nil
	}
	return o.GetObjectMeta()
}

// Unpack decodes the object. The encoding was made by Marshal in this
// process, so decoding it cannot fail but by a bug, which is a panic.
func (p *Packed) Unpack() runtime.Object {
	m, ok := reflect.New(p.typ).Interface().(Message)
	if !ok {
		panic(fmt.Sprintf("packedcache: %s has no protobuf methods", p.typ))
	}
	if err := m.Unmarshal(p.data); err != nil {
		panic(fmt.Sprintf("packedcache: decode a packed %s: %v", p.typ, err))
	}
	return m
}

type packer struct{ typ reflect.Type }

// pack encodes obj if it is of the informer's type; anything else (a
// DeletedFinalStateUnknown, an object packed already) is left as it is.
func (p packer) pack(obj any) (any, error) {
	m, ok := obj.(Message)
	if !ok || reflect.TypeOf(m).Elem() != p.typ {
		return obj, nil
	}
	return Pack(m)
}

// Pack encodes m as the cache keeps it.
func Pack(m Message) (*Packed, error) {
	data, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode a %T for the cache: %w", m, err)
	}
	return &Packed{data: data, typ: reflect.TypeOf(m).Elem()}, nil
}

// unpack decodes a packed object, also inside a tombstone; anything else is
// returned as it is.
func unpack(obj any) any {
	switch o := obj.(type) {
	case *Packed:
		return o.Unpack()
	case toolscache.DeletedFinalStateUnknown:
		o.Obj = unpack(o.Obj)
		return o
	}
	return obj
}

func unpackAll(objs []any) []any {
	for i, o := range objs {
		objs[i] = unpack(o)
	}
	return objs
}

// unpacking makes index functions see decoded objects.
func unpacking(in toolscache.Indexers) toolscache.Indexers {
	out := toolscache.Indexers{}
	for name, f := range in {
		out[name] = func(obj any) ([]string, error) { return f(unpack(obj)) }
	}
	return out
}

// informer packs what it stores and unpacks what it hands out.
type informer struct {
	toolscache.SharedIndexInformer
	packer
}

// SetTransform runs transform first, on the decoded object, then packs.
func (i *informer) SetTransform(transform toolscache.TransformFunc) error {
	return i.SharedIndexInformer.SetTransform(func(obj any) (any, error) {
		if _, packed := obj.(*Packed); packed {
			return obj, nil // client-go may transform an object twice
		}
		if transform != nil {
			var err error
			if obj, err = transform(obj); err != nil {
				return nil, err
			}
		}
		return i.pack(obj)
	})
}

func (i *informer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandler(handler{h})
}

func (i *informer) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, resync time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandlerWithResyncPeriod(handler{h}, resync)
}

func (i *informer) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, opts toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	return i.SharedIndexInformer.AddEventHandlerWithOptions(handler{h}, opts)
}

func (i *informer) AddIndexers(indexers toolscache.Indexers) error {
	return i.SharedIndexInformer.AddIndexers(unpacking(indexers))
}

func (i *informer) GetStore() toolscache.Store { return indexer{i.SharedIndexInformer.GetIndexer()} }

func (i *informer) GetIndexer() toolscache.Indexer {
	return indexer{i.SharedIndexInformer.GetIndexer()}
}

// handler hands decoded objects to an event handler.
type handler struct {
	toolscache.ResourceEventHandler
}

func (h handler) OnAdd(obj any, isInInitialList bool) {
	h.ResourceEventHandler.OnAdd(unpack(obj), isInInitialList)
}
func (h handler) OnUpdate(old, obj any) { h.ResourceEventHandler.OnUpdate(unpack(old), unpack(obj)) }
func (h handler) OnDelete(obj any)      { h.ResourceEventHandler.OnDelete(unpack(obj)) }

// indexer is the informer's indexer for readers: what it returns is
// decoded, a fresh object each time. Writes go to the packed indexer
// unchanged (only the informer writes).
type indexer struct{ toolscache.Indexer }

func (x indexer) List() []any { return unpackAll(x.Indexer.List()) }

func (x indexer) Get(obj any) (any, bool, error) {
	o, found, err := x.Indexer.Get(obj)
	return unpack(o), found, err
}

func (x indexer) GetByKey(key string) (any, bool, error) {
	o, found, err := x.Indexer.GetByKey(key)
	return unpack(o), found, err
}

func (x indexer) Index(name string, obj any) ([]any, error) {
	objs, err := x.Indexer.Index(name, obj)
	return unpackAll(objs), err
}

func (x indexer) ByIndex(name, value string) ([]any, error) {
	objs, err := x.Indexer.ByIndex(name, value)
	return unpackAll(objs), err
}

func (x indexer) AddIndexers(indexers toolscache.Indexers) error {
	return x.Indexer.AddIndexers(unpacking(indexers))
}
