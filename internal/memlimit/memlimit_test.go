package memlimit

import (
	"math"
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestFromCgroup(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  int64
		ok    bool
	}{
		"cgroup v2 limit":         {map[string]string{"sys/fs/cgroup/memory.max": "268435456\n"}, 268435456, true},
		"cgroup v2 without limit": {map[string]string{"sys/fs/cgroup/memory.max": "max\n"}, 0, false},
		"cgroup v1 limit":         {map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "1610612736\n"}, 1610612736, true},
		"cgroup v1 without limit": {map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		"v2 wins over v1":         {map[string]string{"sys/fs/cgroup/memory.max": "1000", "sys/fs/cgroup/memory/memory.limit_in_bytes": "2000"}, 1000, true},
		"no cgroup files":         {map[string]string{}, 0, false},
		"unreadable value":        {map[string]string{"sys/fs/cgroup/memory.max": "lots"}, 0, false},
	} {
		t.Run(name, func(t *testing.T) {
			root := fstest.MapFS{}
			for p, content := range tc.files {
				root[p] = &fstest.MapFile{Data: []byte(content)}
			}
			got, ok := FromCgroup(root)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("FromCgroup = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestLiftTo(t *testing.T) {
	const mib = 1 << 20
	for name, tc := range map[string]struct {
		current, container int64
		ok                 bool
		want               int64
	}{
		"48 MiB under a 256 MiB container: 90 % of it": {48 * mib, 256 * mib, true, 256 * mib * 9 / 10},
		"no container limit: none":                     {48 * mib, 0, false, math.MaxInt64},
		"already above 90 %: kept, never lowered":      {250 * mib, 256 * mib, true, 250 * mib},
		"no soft limit and no container limit: none":   {math.MaxInt64, 0, false, math.MaxInt64},
	} {
		t.Run(name, func(t *testing.T) {
			if got := liftTo(tc.current, tc.container, tc.ok); got != tc.want {
				t.Fatalf("liftTo = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLiftRestores(t *testing.T) {
	const soft = 48 << 20
	before := debug.SetMemoryLimit(soft)
	defer debug.SetMemoryLimit(before)
	restore := Lift()
	if got := debug.SetMemoryLimit(-1); got <= soft {
		t.Fatalf("lifted limit %d, want more than %d", got, soft)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != soft {
		t.Fatalf("restored limit %d, want %d", got, soft)
	}
}
