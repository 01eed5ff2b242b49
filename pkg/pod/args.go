package pod

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/skiffpod/skiff/pkg/strictjson"
)

// The entrypoints' command lines (docs/stage1-abi.md, "Entrypoints"). Each
// type binds its flags in one place, flags, which both Argv (stage0's
// side) and Parse (a stage1's side) use, so a flag is spelled once. Argv
// writes only flags that differ from their zero value, as --name=value
// (--name for a true bool), then the positional arguments.

// RunArgs are the arguments of the run entrypoint.
type RunArgs struct {
	Debug       bool
	Net         string // host, none or default; "" is default
	NetNS       string // since version 2: join this network namespace file (stage0 attached it); Net is then ""
	Hostname    string
	Interactive bool
	// Mutable (since version 3): the pod is an app sandbox; it stays up
	// with no apps, until stopped, and the app entrypoints change its apps.
	Mutable bool
	// PrivateUsers, with FeaturePrivateUsers: UID:COUNT, the host uids of
	// the pod's user namespace; its image trees are already idmapped to it.
	PrivateUsers string
	// IPC, with FeatureIPCParent: "parent" keeps the pod in the host's
	// IPC namespace; "", "auto" and "private" give it its own.
	IPC string
	// NetWait, with FeatureNetWait and NetNS: the inherited fd of a
	// stream socket on which stage0 reports the attach of NetNS, which
	// goes on while run starts: "ok\n" once it is attached, "fail\n"
	// when it failed (stage0 said why; run stops the pod, unlocks it and
	// waits for end of file while stage0 removes it), end of file alone
	// when the attach died. run exits only after end of file.
	NetWait int
	UUID    string
}

func (a *RunArgs) flags(fs *flag.FlagSet) {
	fs.BoolVar(&a.Debug, "debug", false, "")
	fs.StringVar(&a.Net, "net", "", "")
	fs.StringVar(&a.NetNS, "netns", "", "")
	fs.StringVar(&a.Hostname, "hostname", "", "")
	fs.BoolVar(&a.Interactive, "interactive", false, "")
	fs.BoolVar(&a.Mutable, "mutable", false, "")
	fs.StringVar(&a.PrivateUsers, "private-users", "", "")
	fs.StringVar(&a.IPC, "ipc", "", "")
	fs.IntVar(&a.NetWait, "net-wait", 0, "")
}

// Argv returns the arguments stage0 passes to run.
func (a RunArgs) Argv() []string {
	var c RunArgs
	return append(encode(&c, a, c.flags), a.UUID)
}

// Parse parses run's arguments: flags, then the pod UUID. Anything else is
// an ErrUsage.
func (a *RunArgs) Parse(argv []string) error {
	rest, err := decode(EntrypointRun, a.flags, argv)
	if err == nil {
		a.UUID, _, err = positional(EntrypointRun, rest, false)
	}
	if err == nil && a.Mutable && a.Interactive {
		err = fmt.Errorf("%s: %w: --mutable with --interactive", EntrypointRun, ErrUsage)
	}
	if err == nil && a.IPC != "" && a.IPC != "auto" && a.IPC != "private" && a.IPC != "parent" {
		err = fmt.Errorf("%s: %w: --ipc=%q", EntrypointRun, ErrUsage, a.IPC)
	}
	if err == nil && a.NetWait != 0 && (a.NetNS == "" || a.NetWait < 3) {
		err = fmt.Errorf("%s: %w: --net-wait=%d without --netns or not an inherited fd", EntrypointRun, ErrUsage, a.NetWait)
	}
	if err == nil && a.NetNS != "" && a.Net != "" {
		err = fmt.Errorf("%s: %w: --netns with --net=%s", EntrypointRun, ErrUsage, a.Net)
	}
	return err
}

// EnterArgs are the arguments of the enter entrypoint.
type EnterArgs struct {
	Debug bool
	App   string
	// Since version 3, with FeatureDebug: a host directory (a tools
	// image's rendered rootfs) mounted read-only at DebugMountPoint for
	// Cmd alone, and capabilities (CAP_ names, comma-separated) Cmd gets
	// beyond the app's.
	MountImage string
	CapAdd     string
	// With FeatureTTY: Cmd runs on a pseudo-terminal of its own, the
	// caller's stdio copied to and from it, the caller's terminal size
	// passed on.
	TTY bool
	// With FeatureAttach, and no Cmd: connect the caller's stdio to the
	// main process of the app, which was created with stdin
	// (AnnotationStdin); Stdin says whether the caller's stdin goes to it.
	Attach bool
	Stdin  bool
	// With FeatureStats, and no Cmd: write the app's resource usage to
	// stdout, one JSON AppStats.
	Stats bool
	// With FeatureResources, and no Cmd: set the running app's limits to
	// this JSON AppResources.
	Resources string
	// With FeaturePortForward, and no Cmd or App: connect the caller's
	// stdin and stdout to this TCP port on the pod's loopback.
	PortForward uint
	UUID        string
	Cmd         []string // after "--"
}

func (a *EnterArgs) flags(fs *flag.FlagSet) {
	fs.BoolVar(&a.Debug, "debug", false, "")
	fs.StringVar(&a.App, "app", "", "")
	fs.StringVar(&a.MountImage, "mount-image", "", "")
	fs.StringVar(&a.CapAdd, "cap-add", "", "")
	fs.BoolVar(&a.TTY, "tty", false, "")
	fs.BoolVar(&a.Attach, "attach", false, "")
	fs.BoolVar(&a.Stdin, "stdin", false, "")
	fs.BoolVar(&a.Stats, "stats", false, "")
	fs.StringVar(&a.Resources, "resources", "", "")
	fs.UintVar(&a.PortForward, "port-forward", 0, "")
}

// Argv returns the arguments stage0 passes to enter.
func (a EnterArgs) Argv() []string {
	var c EnterArgs
	argv := append(encode(&c, a, c.flags), a.UUID)
	if len(a.Cmd) > 0 {
		argv = append(append(argv, "--"), a.Cmd...)
	}
	return argv
}

// Parse parses enter's arguments: flags, the pod UUID, "--" and the command.
func (a *EnterArgs) Parse(argv []string) error {
	rest, err := decode(EntrypointEnter, a.flags, argv)
	if err == nil {
		a.UUID, a.Cmd, err = positional(EntrypointEnter, rest, true)
	}
	if err == nil && a.PortForward != 0 {
		if a.PortForward > 65535 || a.App != "" || len(a.Cmd) > 0 || a.TTY || a.MountImage != "" || a.CapAdd != "" || a.Attach || a.Stats || a.Resources != "" {
			err = fmt.Errorf("%s: %w: --port-forward takes a port (1-65535) and no --app, command or other mode", EntrypointEnter, ErrUsage)
		}
		return err
	}
	if err == nil && a.App == "" {
		err = fmt.Errorf("%s: %w: no --app", EntrypointEnter, ErrUsage)
	}
	if err == nil && a.Attach && (len(a.Cmd) > 0 || a.TTY || a.MountImage != "" || a.CapAdd != "") {
		err = fmt.Errorf("%s: %w: --attach takes no command, --tty, --mount-image or --cap-add", EntrypointEnter, ErrUsage)
	}
	if err == nil && a.Stats && (len(a.Cmd) > 0 || a.TTY || a.MountImage != "" || a.CapAdd != "" || a.Attach) {
		err = fmt.Errorf("%s: %w: --stats takes no command, --tty, --mount-image, --cap-add or --attach", EntrypointEnter, ErrUsage)
	}
	if err == nil && a.Resources != "" {
		if len(a.Cmd) > 0 || a.TTY || a.MountImage != "" || a.CapAdd != "" || a.Attach || a.Stats {
			err = fmt.Errorf("%s: %w: --resources takes no command, --tty, --mount-image, --cap-add, --attach or --stats", EntrypointEnter, ErrUsage)
		} else if _, rerr := ParseResources(a.Resources); rerr != nil {
			err = fmt.Errorf("%s: %w: --resources: %w", EntrypointEnter, ErrUsage, rerr)
		}
	}
	if err == nil && a.Stdin && !a.Attach {
		err = fmt.Errorf("%s: %w: --stdin without --attach", EntrypointEnter, ErrUsage)
	}
	return err
}

// StopArgs are the arguments of the stop entrypoint.
type StopArgs struct {
	Debug bool
	Force bool
	UUID  string
}

func (a *StopArgs) flags(fs *flag.FlagSet) {
	fs.BoolVar(&a.Debug, "debug", false, "")
	fs.BoolVar(&a.Force, "force", false, "")
}

// Argv returns the arguments stage0 passes to stop.
func (a StopArgs) Argv() []string {
	var c StopArgs
	return append(encode(&c, a, c.flags), a.UUID)
}

// Parse parses stop's arguments: flags, then the pod UUID.
func (a *StopArgs) Parse(argv []string) error {
	rest, err := decode(EntrypointStop, a.flags, argv)
	if err == nil {
		a.UUID, _, err = positional(EntrypointStop, rest, false)
	}
	return err
}

// GCArgs are the arguments of the gc entrypoint.
type GCArgs struct {
	Debug bool
	UUID  string
}

func (a *GCArgs) flags(fs *flag.FlagSet) {
	fs.BoolVar(&a.Debug, "debug", false, "")
}

// Argv returns the arguments stage0 passes to gc.
func (a GCArgs) Argv() []string {
	var c GCArgs
	return append(encode(&c, a, c.flags), a.UUID)
}

// Parse parses gc's arguments: flags, then the pod UUID.
func (a *GCArgs) Parse(argv []string) error {
	rest, err := decode(EntrypointGC, a.flags, argv)
	if err == nil {
		a.UUID, _, err = positional(EntrypointGC, rest, false)
	}
	return err
}

// AppStats is what enter --stats writes (FeatureStats): what the app's
// processes use now. CPUNanos is their CPU time since the app started;
// WorkingSetBytes their memory less what the kernel can reclaim at once
// (the CRI's working set); RSSBytes their resident memory.
type AppStats struct {
	CPUNanos        uint64 `json:"cpuNanos"`
	WorkingSetBytes uint64 `json:"workingSetBytes"`
	RSSBytes        uint64 `json:"rssBytes"`
}

// AppResources is what enter --resources sets on a running app
// (FeatureResources): its memory limit in bytes, CPUQuota µs of CPU time
// per CPUPeriod µs, and its CPU shares (cgroup v1's cpu.shares; systemd
// turns them into a weight). A zero field is left as it is.
type AppResources struct {
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
	CPUQuota    int64 `json:"cpuQuota,omitempty"`
	CPUPeriod   int64 `json:"cpuPeriod,omitempty"`
	CPUShares   int64 `json:"cpuShares,omitempty"`
}

// ParseResources decodes an enter --resources value: one AppResources, no
// unknown field, no negative value, a quota only with its period.
func ParseResources(s string) (AppResources, error) {
	var r AppResources
	if err := strictjson.CheckKeys([]byte(s)); err != nil {
		return r, err
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return r, err
	}
	if r.MemoryBytes < 0 || r.CPUQuota < 0 || r.CPUPeriod < 0 || r.CPUShares < 0 {
		return r, fmt.Errorf("negative value in %s", s)
	}
	if (r.CPUQuota > 0) != (r.CPUPeriod > 0) {
		return r, fmt.Errorf("a CPU quota needs its period, and a period its quota: %s", s)
	}
	return r, nil
}

// AppArgs are the arguments of the app entrypoints (app-add, app-start,
// app-stop, app-rm): one app of the running pod UUID.
type AppArgs struct {
	Debug bool
	App   string
	UUID  string
}

func (a *AppArgs) flags(fs *flag.FlagSet) {
	fs.BoolVar(&a.Debug, "debug", false, "")
	fs.StringVar(&a.App, "app", "", "")
}

// Argv returns the arguments stage0 passes to an app entrypoint.
func (a AppArgs) Argv() []string {
	var c AppArgs
	return append(encode(&c, a, c.flags), a.UUID)
}

// Parse parses the arguments of app entrypoint ep: flags, then the pod
// UUID; --app is required.
func (a *AppArgs) Parse(ep string, argv []string) error {
	rest, err := decode(ep, a.flags, argv)
	if err == nil {
		a.UUID, _, err = positional(ep, rest, false)
	}
	if err == nil && a.App == "" {
		err = fmt.Errorf("%s: %w: no --app", ep, ErrUsage)
	}
	return err
}

// encode binds the flags of *scratch (zeroing it), then sets *scratch to
// val, and returns the flags whose value is not their default.
func encode[T any](scratch *T, val T, bind func(*flag.FlagSet)) []string {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	bind(fs)
	*scratch = val
	var argv []string
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		switch b, _ := f.Value.(interface{ IsBoolFlag() bool }); {
		case v == f.DefValue:
		case b != nil && b.IsBoolFlag() && v == "true":
			argv = append(argv, "--"+f.Name)
		default:
			argv = append(argv, "--"+f.Name+"="+v)
		}
	})
	return argv
}

// decode parses the flags of entrypoint ep and returns what follows them.
func decode(ep string, bind func(*flag.FlagSet), argv []string) ([]string, error) {
	fs := flag.NewFlagSet(ep, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bind(fs)
	if err := fs.Parse(argv); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", ep, ErrUsage, err)
	}
	return fs.Args(), nil
}

// positional splits what follows the flags into the pod UUID and, when
// withCmd, the command after "--".
func positional(ep string, rest []string, withCmd bool) (uuid string, cmd []string, err error) {
	switch {
	case len(rest) == 0 || rest[0] == "":
		return "", nil, fmt.Errorf("%s: %w: no pod uuid", ep, ErrUsage)
	case len(rest) == 1:
		return rest[0], nil, nil
	case withCmd && rest[1] == "--" && len(rest) > 2:
		return rest[0], rest[2:], nil
	}
	return "", nil, fmt.Errorf("%s: %w: unexpected %q", ep, ErrUsage, rest[1:])
}
