package authproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// DefaultCertCheckInterval is how often the serving certificate files are
// checked for a change. cert-manager renews well before expiry, so seconds
// of delay cost nothing.
const DefaultCertCheckInterval = 10 * time.Second

// fileReloader holds what it loads from files and loads it again when any
// of them changes, so a certificate or CA renewed into a mounted Secret is
// used without a restart. The kubelet swaps a mounted Secret's files
// atomically; content caught mid-change fails to load and the previous one
// is kept until the next check.
type fileReloader[T any] struct {
	what    string // for the log: "serving certificate", "gRPC client CA"
	files   []string
	load    func() (*T, error)
	log     *slog.Logger
	current atomic.Pointer[T]
	stamp   string
}

func newFileReloader[T any](what string, log *slog.Logger, load func() (*T, error), files ...string) (*fileReloader[T], error) {
	r := &fileReloader[T]{what: what, files: files, load: load, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// run checks the files every interval until ctx ends.
func (r *fileReloader[T]) run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		if err := r.reload(); err != nil {
			r.log.Warn(r.what+" not reloaded; keeping the previous one", "error", err)
		}
	})
}

// reload loads again if any file's size or modification time changed since
// the last successful load.
func (r *fileReloader[T]) reload() error {
	stamp, err := fileStamp(r.files...)
	if err != nil {
		return err
	}
	if stamp == r.stamp {
		return nil
	}
	v, err := r.load()
	if err != nil {
		return fmt.Errorf("loading the %s: %w", r.what, err)
	}
	r.current.Store(v)
	if r.stamp != "" {
		r.log.Info(r.what+" reloaded", "file", r.files[0])
	}
	r.stamp = stamp
	return nil
}

// certReloader serves the pair in certFile/keyFile.
type certReloader = fileReloader[tls.Certificate]

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	return newFileReloader("serving certificate", log, func() (*tls.Certificate, error) {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		return &cert, err
	}, certFile, keyFile)
}

// getCertificate is tls.Config.GetCertificate.
func getCertificate(r *certReloader) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.current.Load(), nil }
}

// caReloader holds the CAs that client certificates must chain to.
type caReloader = fileReloader[x509.CertPool]

func newCAReloader(caFile string, log *slog.Logger) (*caReloader, error) {
	return newFileReloader("gRPC client CA", log, func() (*x509.CertPool, error) {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		return pool, nil
	}, caFile)
}

// fileStamp identifies the files' current content cheaply. os.Stat follows
// the symlinks through which the kubelet publishes a new Secret version.
func fileStamp(files ...string) (string, error) {
	var stamp string
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}
