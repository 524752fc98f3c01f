package authproxy

import (
	"context"
	"crypto/tls"
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

// certReloader serves the pair in certFile/keyFile and re-reads it when
// either file changes, so a certificate renewed into a mounted Secret is used
// without a restart. The kubelet swaps a mounted Secret's files atomically;
// a pair caught mid-change fails to load and the previous one is kept until
// the next check.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	current           atomic.Pointer[tls.Certificate]
	stamp             string
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current.Load(), nil
}

// run checks the files every interval until ctx ends.
func (r *certReloader) run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		if err := r.reload(); err != nil {
			r.log.Warn("serving certificate not reloaded; keeping the previous one", "error", err)
		}
	})
}

// reload loads the pair if either file's size or modification time changed
// since the last successful load.
func (r *certReloader) reload() error {
	stamp, err := fileStamp(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	if stamp == r.stamp {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("loading the serving certificate: %w", err)
	}
	r.current.Store(&cert)
	if r.stamp != "" {
		r.log.Info("serving certificate reloaded", "certFile", r.certFile)
	}
	r.stamp = stamp
	return nil
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
