// Package testutil is what the Ginkgo suites share: running a suite, the
// figures they measure, a concurrency helper, a namespace per spec, and a
// log buffer that is safe to write from many goroutines.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/octopods/octopods-operator/internal/apikey"
)

// RunSpecs runs a Ginkgo suite, without colours on CI (its logs are files).
func RunSpecs(t *testing.T, name string) {
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteConfig, reporterConfig := ginkgo.GinkgoConfiguration()
	reporterConfig.NoColor = reporterConfig.NoColor || os.Getenv("CI") != ""
	ginkgo.RunSpecs(t, name, suiteConfig, reporterConfig)
}

// Figures collects what a suite measured, to print after it: passing specs'
// output is otherwise not shown by `go test`.
type Figures struct {
	mu    sync.Mutex
	lines []string
}

// Add records a figure and attaches it to the running spec's report.
func (f *Figures) Add(format string, args ...any) {
	line := "FIGURE " + fmt.Sprintf(format, args...)
	ginkgo.AddReportEntry(line, ginkgo.ReportEntryVisibilityAlways)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lines = append(f.lines, line)
}

// Print writes the figures to stdout; call it from ReportAfterSuite.
func (f *Figures) Print() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.lines {
		fmt.Println(l)
	}
}

// Parallel runs do(0..n-1) on workers goroutines. A worker that fails an
// assertion stops; the work is queued up front, so the call still returns
// (and the spec fails at once) even when every worker has stopped.
func Parallel(n, workers int, do func(i int)) {
	next := make(chan int, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			defer ginkgo.GinkgoRecover()
			for i := range next {
				do(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// NewNamespace creates a namespace for one spec.
func NewNamespace(c client.Client, prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	gomega.ExpectWithOffset(1, c.Create(context.Background(), ns)).To(gomega.Succeed())
	return ns.Name
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (loggers).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NewKey is a freshly generated key, for a test.
func NewKey(t testing.TB) string {
	t.Helper()
	k, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
