package podunit

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/skiffpod/skiff/pkg/clilog"
	"github.com/skiffpod/skiff/pkg/pod"
)

// ParseArgs parses an entrypoint's flags as docs/stage1-abi.md lays them
// out and returns the pod UUID (the last argument) and, when withCmd, the
// command that follows it after "--". Unknown flags are a usage error.
func ParseArgs(fs *flag.FlagSet, args []string, withCmd bool) (uuid string, cmd []string, err error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", nil, fmt.Errorf("%s: %w: %w", fs.Name(), ErrUsage, err)
	}
	a := fs.Args()
	if len(a) == 0 {
		return "", nil, fmt.Errorf("%s: %w: no pod uuid", fs.Name(), ErrUsage)
	}
	if withCmd && len(a) > 1 && a[1] == "--" {
		return a[0], a[2:], nil
	}
	if len(a) > 1 {
		return "", nil, fmt.Errorf("%s: %w: unexpected %q", fs.Name(), ErrUsage, a[1:])
	}
	return a[0], nil, nil
}

// RunFlags are what the run entrypoint is told (docs/stage1-abi.md, v1).
type RunFlags struct {
	UUID        string
	Net         string // host, none or default
	Hostname    string
	Interactive bool
	Debug       bool
}

// ParseRun parses the run entrypoint's arguments: its flags, then the UUID.
func ParseRun(args []string) (RunFlags, error) {
	var f RunFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.BoolVar(&f.Debug, "debug", false, "")
	fs.StringVar(&f.Net, "net", "default", "")
	fs.StringVar(&f.Hostname, "hostname", "", "")
	fs.BoolVar(&f.Interactive, "interactive", false, "")
	uuid, _, err := ParseArgs(fs, args, false)
	f.UUID = uuid
	return f, err
}

// Logger is an entrypoint's logger on stderr, for people: lines start
// "skiff STAGE ENTRYPOINT:" and carry the pod; debug (or SKIFF_DEBUG=1)
// turns on debug lines.
func Logger(stage, entrypoint, uuid string, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug || os.Getenv(pod.EnvDebug) == "1" {
		level = slog.LevelDebug
	}
	return clilog.New(os.Stderr, "skiff "+stage+" "+entrypoint, level).With("pod", uuid)
}
