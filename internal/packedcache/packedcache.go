// Package packedcache keeps the objects of an informer packed: encoded
// (protobuf for built-in types, JSON for custom resources) and compressed
// against a dictionary, instead of as decoded Go structs. It hands decoded
// objects to whoever reads the informer: a copy of their own to readers of
// its indexer and store, one shared, read-only object per event to its
// event handlers and index functions.
//
// A decoded object costs several times its encoding: every string, map and
// pointer of its ObjectMeta is an allocation of its own, and a map of even
// one entry takes a whole group of eight slots. And objects of one kind
// repeat most of their bytes: field names, the namespace, owner kinds,
// finalizers, condition types, reasons and messages. Compressed against an
// object of the same kind, what is left is mostly what is an object's own
// (its name, UID, digests and times): about a tenth of its decoded size.
// The manager caches a Workspace, a key object and a key Secret per key,
// each read a few times per reconcile, so at 100,000 keys this saves
// hundreds of megabytes for about ten microseconds a read.
package packedcache

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
)

// Message is a Kubernetes API type with generated protobuf methods, as every
// built-in type has (corev1.Secret, ...). Other types are encoded as JSON,
// as the API server sends them: their own JSON methods (a spec's Duration
// that keeps an invalid value) are honoured, which CBOR would skip.
type Message interface {
	runtime.Object
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// NewInformerFunc returns what controller-runtime's cache.Options.NewInformer
// takes: informers of the types of packed are packed, the others are
// client-go's, unchanged.
func NewInformerFunc(packed ...runtime.Object) func(toolscache.ListerWatcher, runtime.Object, time.Duration, toolscache.Indexers) toolscache.SharedIndexInformer {
	codecs := map[reflect.Type]*Codec{}
	for _, o := range packed {
		codecs[reflect.TypeOf(o)] = NewCodec(o)
	}
	return func(lw toolscache.ListerWatcher, example runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
		c, ok := codecs[reflect.TypeOf(example)]
		if !ok {
			return toolscache.NewSharedIndexInformer(lw, example, resync, indexers)
		}
		inner := toolscache.NewSharedIndexInformer(lw, example, resync, unpacking(indexers))
		i := &informer{SharedIndexInformer: inner, codec: c}
		_ = i.SetTransform(nil) // packs even if no one sets a transform; cannot fail before Run
		return i
	}
}

// Packed is one object, packed. It is a runtime.Object and a
// metav1.ObjectMetaAccessor, so that the informer's own machinery (keys,
// the namespace index, resource versions) works on it unchanged.
type Packed struct {
	data  []byte
	codec *Codec
}

// GetObjectKind implements runtime.Object; a packed object has no kind.
func (p *Packed) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. The encoding is never changed in
// place, so a copy may share it.
func (p *Packed) DeepCopyObject() runtime.Object { c := *p; return &c }

// GetObjectMeta decodes the object for its metadata (read only).
func (p *Packed) GetObjectMeta() metav1.Object {
	o, ok := p.shared().(metav1.ObjectMetaAccessor)
	if !ok {
		return nil
	}
	return o.GetObjectMeta()
}

// Unpack decodes the object. The encoding was made by Pack in this process,
// so decoding it cannot fail but by a bug, which is a panic.
func (p *Packed) Unpack() runtime.Object {
	o, err := p.codec.decode(p.data)
	if err != nil {
		panic(fmt.Sprintf("packedcache: decode a packed %s: %v", p.codec.typ, err))
	}
	return o
}

// shared is the object decoded for the informer's own machinery: its keys,
// index functions and event handlers, which read one object several times
// an event (client-go gives them one object to share, read only). The last
// few decoded are remembered: an update event decodes its old and new
// object once each instead of about seven times.
func (p *Packed) shared() runtime.Object {
	key := &p.data[0] // an encoding is never empty, and never changed
	r := &p.codec.recent
	for i := range r.slots {
		if d := r.slots[i].Load(); d != nil && d.data == key {
			return d.obj
		}
	}
	obj := p.Unpack()
	r.slots[r.next.Add(1)%recentSlots].Store(&decodedObject{data: key, obj: obj})
	return obj
}

// recentSlots is how many decoded objects Packed.shared remembers: an
// update's old and new object, and the next ones the reflector queues.
const recentSlots = 4

type decodedObject struct {
	data *byte
	obj  runtime.Object
}

// Size is the length of the packed encoding.
func (p *Packed) Size() int { return len(p.data) }

// Codec packs the objects of one type: protobuf or JSON, compressed with
// DEFLATE against a dictionary, the encoding of the first object it packs.
// That object is as good a sample as any: what matters is the bytes every
// object of the kind repeats.
type Codec struct {
	typ       reflect.Type
	marshal   func(runtime.Object) ([]byte, error)
	unmarshal func([]byte, runtime.Object) error

	dictOnce sync.Once
	dict     []byte
	writers  sync.Pool // *packWriter
	readers  sync.Pool // *unpackReader
	recent   struct {
		slots [recentSlots]atomic.Pointer[decodedObject]
		next  atomic.Uint32
	}
}

// compressionLevel is the fastest level that uses the dictionary: BestSpeed
// ignores it. Higher levels gain almost nothing on objects this small.
const compressionLevel = 2

// NewCodec makes the codec of example's type.
func NewCodec(example runtime.Object) *Codec {
	c := &Codec{typ: reflect.TypeOf(example).Elem()}
	if _, ok := example.(Message); ok {
		c.marshal = func(o runtime.Object) ([]byte, error) { return o.(Message).Marshal() }
		c.unmarshal = func(b []byte, o runtime.Object) error { return o.(Message).Unmarshal(b) }
	} else {
		c.marshal = func(o runtime.Object) ([]byte, error) { return json.Marshal(o) }
		c.unmarshal = func(b []byte, o runtime.Object) error { return json.Unmarshal(b, o) }
	}
	return c
}

type packWriter struct {
	buf bytes.Buffer
	w   *flate.Writer
}

type unpackReader struct {
	src bytes.Reader
	out bytes.Buffer
	r   io.ReadCloser // a flate.Resetter
}

// Pack packs obj if it is of the codec's type; anything else (a
// DeletedFinalStateUnknown, an object packed already) is left as it is.
func (c *Codec) pack(obj any) (any, error) {
	o, ok := obj.(runtime.Object)
	if !ok || reflect.TypeOf(o) != reflect.PointerTo(c.typ) {
		return obj, nil
	}
	return c.Pack(o)
}

// Pack packs o, which must be of the codec's type.
func (c *Codec) Pack(o runtime.Object) (*Packed, error) {
	enc, err := c.marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode a %T for the cache: %w", o, err)
	}
	c.dictOnce.Do(func() { c.dict = enc })
	pw, _ := c.writers.Get().(*packWriter)
	if pw == nil {
		pw = &packWriter{}
		if pw.w, err = flate.NewWriterDict(&pw.buf, compressionLevel, c.dict); err != nil {
			return nil, fmt.Errorf("compress a %T for the cache: %w", o, err)
		}
	}
	defer c.writers.Put(pw)
	pw.buf.Reset()
	pw.w.Reset(&pw.buf)
	if _, err := pw.w.Write(enc); err != nil {
		return nil, fmt.Errorf("compress a %T for the cache: %w", o, err)
	}
	if err := pw.w.Close(); err != nil {
		return nil, fmt.Errorf("compress a %T for the cache: %w", o, err)
	}
	return &Packed{data: bytes.Clone(pw.buf.Bytes()), codec: c}, nil
}

func (c *Codec) decode(data []byte) (runtime.Object, error) {
	ur, _ := c.readers.Get().(*unpackReader)
	if ur == nil {
		ur = &unpackReader{}
		ur.r = flate.NewReaderDict(&ur.src, c.dict)
	}
	defer c.readers.Put(ur)
	ur.src.Reset(data)
	if err := ur.r.(flate.Resetter).Reset(&ur.src, c.dict); err != nil {
		return nil, err
	}
	ur.out.Reset()
	if _, err := ur.out.ReadFrom(ur.r); err != nil {
		return nil, err
	}
	o, _ := reflect.New(c.typ).Interface().(runtime.Object)
	// Both decoders copy what they keep: the buffer is reused.
	if err := c.unmarshal(ur.out.Bytes(), o); err != nil {
		return nil, err
	}
	return o, nil
}

// unpack decodes a packed object, also inside a tombstone, into an object
// of the caller's own; anything else is returned as it is.
func unpack(obj any) any { return unpackBy(obj, (*Packed).Unpack) }

// unpackShared is unpack for readers that only read: Packed.shared.
func unpackShared(obj any) any { return unpackBy(obj, (*Packed).shared) }

func unpackBy(obj any, decode func(*Packed) runtime.Object) any {
	switch o := obj.(type) {
	case *Packed:
		return decode(o)
	case toolscache.DeletedFinalStateUnknown:
		o.Obj = unpackBy(o.Obj, decode)
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
		out[name] = func(obj any) ([]string, error) { return f(unpackShared(obj)) }
	}
	return out
}

// informer packs what it stores and unpacks what it hands out.
type informer struct {
	toolscache.SharedIndexInformer
	codec *Codec
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
		return i.codec.pack(obj)
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

// handler hands decoded objects to an event handler, shared with the
// informer's other readers of the event (Packed.shared): read only, as
// client-go's handlers already share one object.
type handler struct {
	toolscache.ResourceEventHandler
}

func (h handler) OnAdd(obj any, isInInitialList bool) {
	h.ResourceEventHandler.OnAdd(unpackShared(obj), isInInitialList)
}
func (h handler) OnUpdate(old, obj any) {
	h.ResourceEventHandler.OnUpdate(unpackShared(old), unpackShared(obj))
}
func (h handler) OnDelete(obj any) { h.ResourceEventHandler.OnDelete(unpackShared(obj)) }

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

// rawIndexer is the indexer of inf as it stores objects: packed ones for a
// packed informer.
func rawIndexer(inf any) (toolscache.Indexer, error) {
	switch i := inf.(type) {
	case *informer:
		return i.SharedIndexInformer.GetIndexer(), nil
	case interface{ GetIndexer() toolscache.Indexer }:
		return i.GetIndexer(), nil
	}
	return nil, fmt.Errorf("packedcache: cannot read a %T one object at a time", inf)
}

// Namespaces are the namespaces the informer inf holds objects of, read
// from its namespace index: nothing is decoded.
func Namespaces(inf any) ([]string, error) {
	x, err := rawIndexer(inf)
	if err != nil {
		return nil, err
	}
	return x.ListIndexFuncValues(toolscache.NamespaceIndex), nil
}

// Keys are the "namespace/name" keys of the informer inf's objects:
// nothing is decoded.
func Keys(inf any) ([]string, error) {
	x, err := rawIndexer(inf)
	if err != nil {
		return nil, err
	}
	return x.ListKeys(), nil
}

// Each calls fn with every object of the informer inf in namespace ("": all), each
// decoded only for its call when the informer is packed, so that reading
// 100,000 objects never holds them all decoded at once (the cache's List
// would). For an informer that is not packed, fn gets the cached objects
// themselves: it must not change them. It stops at fn's first error.
func Each(inf any, namespace string, fn func(runtime.Object) error) error {
	x, err := rawIndexer(inf)
	if err != nil {
		return err
	}
	objs := x.List()
	if namespace != "" {
		if objs, err = x.ByIndex(toolscache.NamespaceIndex, namespace); err != nil {
			return fmt.Errorf("read the objects of namespace %s: %w", namespace, err)
		}
	}
	for _, o := range objs {
		obj, ok := unpack(o).(runtime.Object)
		if !ok {
			continue
		}
		if err := fn(obj); err != nil {
			return err
		}
	}
	return nil
}
