package cluster

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newSlogZapLogger returns a zap logger that forwards to an slog logger, so
// etcd (which logs through zap) writes into the process's slog output.
func newSlogZapLogger(l *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{handler: l.Handler()})
}

// slogCore is a zapcore.Core writing records to an slog.Handler.
type slogCore struct {
	handler slog.Handler
}

func zapToSlogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.handler.Enabled(context.Background(), zapToSlogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{handler: c.handler.WithAttrs(zapFieldsToAttrs(fields))}
}

func (c *slogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *slogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	rec := slog.NewRecord(ent.Time, zapToSlogLevel(ent.Level), ent.Message, 0)
	rec.AddAttrs(zapFieldsToAttrs(fields)...)
	return c.handler.Handle(context.Background(), rec)
}

func (c *slogCore) Sync() error { return nil }

func zapFieldsToAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}
