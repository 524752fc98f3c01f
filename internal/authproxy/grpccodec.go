package authproxy

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// vtCodec marshals the messages go-control-plane generated vtprotobuf code
// for (CheckResponse) without reflection; everything else, and every
// unmarshal, goes to the standard proto codec.
type vtCodec struct{ fallback encoding.CodecV2 }

type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict([]byte) (int, error)
}

func newVTCodec() vtCodec { return vtCodec{fallback: encoding.GetCodecV2("proto")} }

func (c vtCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMarshaler)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVTStrict(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVTStrict((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (c vtCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.fallback.Unmarshal(data, v) }

func (c vtCodec) Name() string { return c.fallback.Name() }
