package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/clilog"
	"github.com/skiffpod/skiff/pkg/pod"
)

// Exit codes. Apps' statuses pass through `skiff run` unchanged.
const (
	exitOK      = 0
	exitFailure = pod.ExitFailure // skiff's own failures, as rkt
	exitUsage   = 2
)

// exitCode is an error that carries the status skiff must exit with.
type exitCode struct {
	code int
	err  error // may be nil: the status speaks for itself
}

func (e *exitCode) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

// usageError marks errors in how skiff was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Usage marks the error as one of how skiff was called; packages that
// check flags (podnet) mark theirs the same way.
func (usageError) Usage() bool { return true }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// globals are the flags every command shares.
type globals struct {
	dir         string
	localConfig string
	debug       bool
	insecure    []string
	platform    string       // of OCI images: os/arch[/variant]; "" is the host's
	authfile    string       // --authfile: registry credentials (stage0/registries.go)
	http        *http.Client // for trust's key fetches; nil: http.DefaultClient
	log         *slog.Logger
	stdout      io.Writer
	stderr      io.Writer
}

// insecureGroups are the --insecure-options that stand for several, as
// rkt's all-fetch, all-run and all; ondisk is accepted and means nothing,
// as in rkt (skiff never rehashes a tree at run: docs/security.md).
var insecureGroups = map[string][]string{
	"all-fetch": {"image", "http", "tls"},
	"all-run":   {"capabilities", "paths", "seccomp", "ondisk"},
	"all":       {"image", "http", "tls", "capabilities", "paths", "seccomp", "ondisk"},
}

// insecureOptionNames lists every option --insecure-options takes.
const insecureOptionNames = "image, http, tls, capabilities, paths, seccomp, ondisk, all-fetch, all-run or all"

func (g *globals) insecureOpt(name string) bool {
	for _, o := range g.insecure {
		for _, o := range strings.Split(o, ",") {
			if o == name || slices.Contains(insecureGroups[o], name) {
				return true
			}
		}
	}
	return false
}

// insecureRun lists the run-time protections --insecure-options turns off
// (capabilities, paths, seccomp), for the pod manifest.
func (g *globals) insecureRun() []string {
	var out []string
	for _, o := range []string{"capabilities", "paths", "seccomp"} {
		if g.insecureOpt(o) {
			out = append(out, o)
		}
	}
	return out
}

func newRoot(g *globals) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "skiff",
		Short: "skiff runs pods: apps isolated together by namespaces or by a KVM virtual machine",
		Long: `skiff runs pods: one or more apps that share one isolation environment,
chosen per pod with --stage1=ns (systemd-nspawn) or --stage1=kvm (a qemu microvm).

Images are appc ACIs, verified against keys you trust with 'skiff trust', kept
in a content-addressed store under --dir. Every pod is a directory there too.

  skiff trust --prefix skiff.local bin/images/test-key.asc
  skiff run bin/images/busybox.aci --exec /bin/echo -- hello
  skiff list
  skiff logs UUID`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion {
				return printVersion(g, "table")
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelWarn
			if g.debug {
				level = slog.LevelDebug
			}
			g.log = clilog.New(g.stderr, "skiff", level)
			for _, o := range g.insecure {
				for _, o := range strings.Split(o, ",") {
					switch o {
					case "image", "http", "tls", "capabilities", "paths", "seccomp", "ondisk", "":
					default:
						if insecureGroups[o] == nil {
							return usagef("--insecure-options: unknown option %q (want %s)", o, insecureOptionNames)
						}
					}
				}
			}
			// Nothing skiff or a stage1 creates (sockets, logs, pod files)
			// may be writable by group or others, whatever the caller's umask.
			unix.Umask(unix.Umask(0o022) | 0o022)
			return migrateDataDir(g)
		},
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.dir, "dir", "/var/lib/skiff", "data directory: the image store and the pods")
	pf.StringVar(&g.localConfig, "local-config", "/etc/skiff", "local configuration directory (trusted keys)")
	pf.BoolVar(&g.debug, "debug", false, "print debug messages, and pass --debug to stage1")
	pf.StringSliceVar(&g.insecure, "insecure-options", nil, "turn off security features: image (signature checks), http (plain http fetches), tls (registry certificates), all-fetch (those three); capabilities (apps get every one), paths (no masked or read-only /proc and /sys paths, no device cgroup), seccomp (no filter), all-run (those three); all")
	pf.StringVar(&g.authfile, "authfile", "", "registry auth file (default $REGISTRY_AUTH_FILE, else LOCAL-CONFIG/auth.json; then ~/.docker/config.json)")
	pf.StringVar(&g.platform, "platform", "", "platform of OCI images to fetch from an index: os/arch[/variant] (default the host's)")
	root.Flags().BoolVar(&showVersion, "version", false, "print the version (as 'skiff version') and exit")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newRunCmd(g), newPrepareCmd(g), newRunPreparedCmd(g),
		newFetchCmd(g), newTrustCmd(g), newImageCmd(g), newNetworkCmd(g),
		newListCmd(g), newStatusCmd(g), newEnterCmd(g), newAttachCmd(g), newDebugCmd(g), newStopCmd(g),
		newRmCmd(g), newGCCmd(g), newCatManifestCmd(g), newExportCmd(g), newLogsCmd(g), newVersionCmd(g), newConfigCmd(g), newFsckCmd(g),
		newLoginCmd(g), newLogoutCmd(g), newBuildCmd(g), newAppCmd(g), newCRICmd(g), newNetAttachCmd(g),
	)
	root.AddCommand(newGenManCmd(root))
	registerCompletions(g, root)
	return root
}

// run executes the CLI and maps errors to exit codes. It is main without
// the exit, so tests can call it.
func run(args []string) int {
	g := &globals{stdout: os.Stdout, stderr: os.Stderr, log: slog.New(slog.DiscardHandler)}
	root := newRoot(g)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ec *exitCode
	if errors.As(err, &ec) {
		if ec.err != nil {
			fmt.Fprintf(g.stderr, "skiff: %v\n", ec.err)
		}
		return ec.code
	}
	fmt.Fprintf(g.stderr, "skiff: %v\n", err)
	var ue interface{ Usage() bool }
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintln(g.stderr, "Run 'skiff --help' for usage.")
		return exitUsage
	}
	return exitFailure
}

// isCobraUsage recognises the argument errors cobra itself returns.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument", "flag needs an argument"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
