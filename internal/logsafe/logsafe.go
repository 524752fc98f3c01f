// Package logsafe keeps keys out of logs whatever the verbosity: client-go
// logs whole request and response bodies (Secrets included, as hex dumps)
// at V(8) through the logger in a reconcile's context.
package logsafe

import "github.com/go-logr/logr"

// MaxVerbosity is the highest V-level ever logged: below client-go's body
// logging (V(8)), above everything this operator logs (V(1)).
const MaxVerbosity = 5

// Capped returns l without its V-levels above MaxVerbosity.
func Capped(l logr.Logger) logr.Logger {
	if l.GetSink() == nil {
		return l
	}
	return logr.New(cappedSink{l.GetSink()})
}

type cappedSink struct{ logr.LogSink }

func (s cappedSink) Enabled(level int) bool {
	return level <= MaxVerbosity && s.LogSink.Enabled(level)
}

func (s cappedSink) WithValues(kv ...any) logr.LogSink {
	return cappedSink{s.LogSink.WithValues(kv...)}
}

func (s cappedSink) WithName(name string) logr.LogSink { return cappedSink{s.LogSink.WithName(name)} }

// WithCallDepth keeps caller information pointing at the real call site.
func (s cappedSink) WithCallDepth(depth int) logr.LogSink {
	if d, ok := s.LogSink.(logr.CallDepthLogSink); ok {
		return cappedSink{d.WithCallDepth(depth)}
	}
	return s
}
