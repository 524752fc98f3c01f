package memlimit

import (
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
