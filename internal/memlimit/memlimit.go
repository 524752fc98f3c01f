// Package memlimit sets the Go runtime's soft memory limit to a share of the
// container's memory limit (its cgroup's), so that the garbage collector
// works harder as the process nears the limit instead of letting the heap
// double and the kernel kill the pod. A soft limit equal to the container's
// own leaves no room: measured with the manager at 100k workspaces, its RSS
// settled 2 MiB above a 1536 MiB GOMEMLIMIT.
package memlimit

import (
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Ratio of the container's memory limit given to the Go heap and runtime;
// the rest is headroom for what the runtime does not count.
const Ratio = 0.9

// cgroupFiles hold the memory limit: cgroup v2, then v1.
var cgroupFiles = []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"}

// unlimited is where cgroup v1 reports "no limit" (a page-rounded maximum).
const unlimited = int64(1) << 62

// FromCgroup is the container's memory limit in bytes, read from root (the
// filesystem root in production); false when there is none.
func FromCgroup(root fs.FS) (int64, bool) {
	for _, name := range cgroupFiles {
		raw, err := fs.ReadFile(root, name)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil || n <= 0 || n >= unlimited { // "max", or v1's no-limit value
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// Apply sets the soft limit to Ratio of the container's memory limit, unless
// GOMEMLIMIT is set (it wins) or there is no limit. It returns the limit it
// set, 0 if none.
func Apply() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, ok := FromCgroup(os.DirFS("/"))
	if !ok {
		return 0
	}
	soft := int64(float64(limit) * Ratio)
	debug.SetMemoryLimit(soft)
	return soft
}

// Lift raises the soft limit to Ratio of the container's memory limit (to
// none when the container has none) until the returned function puts the
// previous one back; it never lowers it. It is for a burst of garbage that
// ends before any request waits on the process: the auth proxy's first
// sync, whose list pages a 48 MiB soft limit would collect dozens of times
// over while the proxy is not ready yet (100k keys: ready in 1.72 s
// instead of 2.56 s, hack/syncbench).
func Lift() (restore func()) {
	limit, ok := FromCgroup(os.DirFS("/"))
	current := debug.SetMemoryLimit(-1)
	lifted := liftTo(current, limit, ok)
	if lifted == current {
		return func() {}
	}
	debug.SetMemoryLimit(lifted)
	return func() { debug.SetMemoryLimit(current) }
}

// liftTo is the soft limit Lift sets, from the current one and the
// container's memory limit (ok false: none).
func liftTo(current, container int64, ok bool) int64 {
	if !ok {
		return math.MaxInt64
	}
	return max(current, int64(float64(container)*Ratio))
}
