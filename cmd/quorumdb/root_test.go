package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatalf("version: %v", err)
	}
	if !strings.HasPrefix(out.String(), "quorumdb ") {
		t.Fatalf("version printed %q", out.String())
	}
}

func TestUnknownCommandFails(t *testing.T) {
	root := newRootCommand()
	root.SetArgs([]string{"no-such-command"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	if err := root.Execute(); err == nil {
		t.Fatal("unknown command succeeded")
	}
}

func TestParseBackends(t *testing.T) {
	bs, err := parseBackends([]string{"n1=127.0.0.1:4000,127.0.0.1:8080", "n2=127.0.0.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].HTTPAddr != "127.0.0.1:8080" || bs[1].SQLAddr != "127.0.0.1:4001" || bs[1].HTTPAddr != "" {
		t.Fatalf("parsed %+v", bs)
	}
	for _, bad := range []string{"n1", "=127.0.0.1:1", "n1="} {
		if _, err := parseBackends([]string{bad}); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
	if _, err := parseBackends(nil); err == nil {
		t.Fatal("accepted no backends")
	}
}

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	newFormattedLogger(&buf, "info", "json").Info("hello", "node", 1)
	if !strings.HasPrefix(buf.String(), "{") || !strings.Contains(buf.String(), `"node":1`) {
		t.Fatalf("json log line %q", buf.String())
	}
	buf.Reset()
	newFormattedLogger(&buf, "warn", "text").Info("dropped")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn level: %q", buf.String())
	}
}
