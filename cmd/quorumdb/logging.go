package main

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// newLogger returns a text slog logger at the given level name (debug,
// info, warn, error; anything else means info).
func newLogger(w io.Writer, level string) *slog.Logger {
	return newFormattedLogger(w, level, "text")
}

// newCommandLogger returns a logger on cmd's stderr in the format of the
// root's --log-format flag.
func newCommandLogger(cmd *cobra.Command, level string) *slog.Logger {
	format := "text"
	if f := cmd.Flags().Lookup("log-format"); f != nil {
		format = f.Value.String()
	}
	return newFormattedLogger(cmd.ErrOrStderr(), level, format)
}

func newFormattedLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
