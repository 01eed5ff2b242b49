package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/pflag"

	"github.com/skiffpod/skiff/pkg/fetch"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podnet"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/stage1"
)

// pidsLimit maps --pids-limit (0: none) onto prepare's PidsLimit (negative: none).
func pidsLimit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// podFlags are the flags of run and prepare that concern the whole pod.
type podFlags struct {
	stage1 string
	// stage1By are rkt's --stage1-name, -path, -url, -hash and -from-dir,
	// by kind; check turns the one given into stage1.
	stage1By     map[string]*string
	stage1Given  bool // --stage1 was given
	volumes      []string
	hostname     string
	interactive  bool
	inheritEnv   bool
	noOverlay    bool
	privateUsers string // "auto" or "no"
	pidsLimit    int64
	uuidFileSave string
	podManifest  string // rkt's --pod-manifest: the apps come from this file
	ipc          string // auto, private or parent (rkt's --ipc)
	pullPolicy   string
	signatures   []string
	// netReq is the network flags (--net, --publish, --dns, ...).
	netReq podnet.Request
	// prepareOnly: the command is prepare, which takes no run options.
	prepareOnly bool
	// sandbox: the command is app sandbox, a pod with no apps run with --mutable.
	sandbox bool
	// privileged (app sandbox only): privileged apps may have the host's devices.
	privileged bool
	// Per-app flags given before the first image apply to every app.
	defaults appFlags
}

// appFlags are the flags that may follow each image.
type appFlags struct {
	name, exec, user, group, workDir, memory, cpu, seccomp string
	cpuShares, oomScoreAdj                                 string
	env, envFiles, mounts, capsRetain, capsRemove          []string
	readOnly, noNewPrivs                                   bool
}

func (f *podFlags) register(fs *pflag.FlagSet) {
	fs.Var(&givenString{&f.stage1, &f.stage1Given}, "stage1", "isolation for this pod: ns (systemd-nspawn), kvm (a qemu microvm), or a stage1 image path, name or ID")
	if f.stage1 == "" {
		f.stage1 = "ns"
	}
	fs.Lookup("stage1").DefValue = "ns"
	if f.sandbox {
		fs.BoolVar(&f.privileged, "privileged", false, "a privileged sandbox: its privileged apps may have the host's devices (stage1 feature host-devices; skiff cri's privileged sandboxes)")
	}
	f.stage1By = map[string]*string{}
	for _, k := range []struct{ kind, help string }{
		{"name", "a stage1 image by name[:version] (rkt's flag)"},
		{"path", "a stage1 image file (rkt's flag)"},
		{"url", "a stage1 image at an https URL (rkt's flag)"},
		{"hash", "a stage1 image in the store by ID (rkt's flag)"},
		{"from-dir", "a stage1 image file by name in the directories of the default stage1 images (rkt's flag)"},
	} {
		f.stage1By[k.kind] = fs.String("stage1-"+k.kind, "", k.help)
	}
	fs.StringArrayVar(&f.volumes, "volume", nil, "a pod volume: NAME,kind=host,source=/PATH[,readOnly=true] or NAME,kind=empty[,mode=0755,uid=,gid=]")
	f.registerNet(fs)
	fs.StringVar(&f.hostname, "hostname", "", "the pod's hostname (default skiff-<uuid>)")
	fs.BoolVar(&f.interactive, "interactive", false, "attach the terminal to the pod's only app")
	fs.BoolVar(&f.inheritEnv, "inherit-env", false, "give apps skiff's environment, below the image's and --set-env's")
	fs.BoolVar(&f.noOverlay, "no-overlay", false, "copy image trees into the pod instead of overlaying them")
	fs.StringVar(&f.privateUsers, "private-users", "no", "auto: a user namespace of the pod's own, root in it an unprivileged host uid range (stage1 ns; docs/user-namespaces.md); no: the host's")
	fs.Lookup("private-users").NoOptDefVal = "auto"
	fs.Int64Var(&f.pidsLimit, "pids-limit", podunit.DefaultPidsLimit, "the most tasks (processes and threads) the whole pod may hold; 0 for no limit")
	fs.StringVar(&f.uuidFileSave, "uuid-file-save", "", "write the pod's UUID to this file")
	fs.StringVar(&f.pullPolicy, "pull-policy", "new", "when to fetch remote images: new (only if not in the store), update (check for a newer one), never (store only)")
	fs.StringArrayVar(&f.signatures, "signature", nil, "detached signature of the image at the same position (repeat per image)")
	f.defaults.register(fs)
}

func (a *appFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.name, "name", a.name, "app name (default: the last element of the image name)")
	fs.StringVar(&a.exec, "exec", a.exec, "run this program instead of the image's exec")
	fs.StringVar(&a.user, "user", a.user, "user to run the app as: a number, or a name from the image's /etc/passwd")
	fs.StringVar(&a.group, "group", a.group, "group to run the app as: a number, or a name from the image's /etc/group")
	fs.StringVar(&a.workDir, "working-dir", a.workDir, "working directory of the app")
	fs.StringArrayVar(&a.env, "set-env", a.env, "set an environment variable KEY=VALUE (highest precedence)")
	fs.StringArrayVar(&a.envFiles, "set-env-file", a.envFiles, "read KEY=VALUE lines from a file (below --set-env)")
	fs.StringArrayVar(&a.mounts, "mount", a.mounts, "mount a pod volume into the app: volume=NAME,target=/PATH, or target=NAME of one of the image's mount points")
	fs.StringVar(&a.memory, "memory", a.memory, "memory limit, e.g. 128M or 1G")
	fs.StringVar(&a.cpu, "cpu", a.cpu, "CPU limit in cores, e.g. 500m or 2")
	fs.StringVar(&a.cpuShares, "cpu-shares", a.cpuShares, "the app's CPU time weight, 2 to 262144 (1024: the default weight)")
	fs.StringVar(&a.oomScoreAdj, "oom-score-adj", a.oomScoreAdj, "the app's OOM score adjustment, -1000 to 1000 (raised to the lowest the host allows, with a warning)")
	fs.StringSliceVar(&a.capsRetain, "caps-retain", a.capsRetain, "keep only these capabilities, e.g. CAP_NET_BIND_SERVICE,CAP_CHOWN")
	fs.StringSliceVar(&a.capsRemove, "caps-remove", a.capsRemove, "remove these capabilities from the default set")
	fs.StringVar(&a.seccomp, "seccomp", a.seccomp, "seccomp filter replacing the default profile: mode=retain|remove[,errno=EPERM],SYSCALL,... (mode=retain,@appc.io/all: none)")
	fs.BoolVar(&a.readOnly, "readonly-rootfs", a.readOnly, "mount the app's root filesystem read-only")
	fs.BoolVar(&a.noNewPrivs, "no-new-privileges", a.noNewPrivs, "set no_new_privs: the app can never gain privileges (setuid, file caps)")
}

// appArg is one image on the command line with its own flags and args.
type appArg struct {
	image string
	flags appFlags
	args  []string
	set   map[string]bool // flags given after this image
	// runtime is the app as --pod-manifest gave it.
	runtime *schema.RuntimeApp
}

// parseApps splits what follows the pod flags into apps, as rkt's
// parseApps does: each image is followed by its own app flags, then
// optionally "--" and its arguments up to "---" (or the end); any other
// word where an image or an app flag may stand is the next image:
//
//	IMAGE [APP FLAGS] [-- ARGS... [---]] [IMAGE [APP FLAGS] [-- ARGS... [---]]]...
//
// "---" between apps is allowed too (skiff's older form): it must be
// followed by an image.
func parseApps(rest []string, defaults appFlags) ([]appArg, error) {
	var apps []appArg
	var fs *pflag.FlagSet // the last app's flags
	hasArgs := false      // the last app has its "--" arguments already
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		switch {
		case w == "---":
			if len(apps) == 0 || i+1 == len(rest) || strings.HasPrefix(rest[i+1], "-") {
				return nil, usagef("--- must be followed by an image")
			}
		case w == "--":
			if len(apps) == 0 {
				return nil, usagef("an image is needed before app arguments")
			}
			if hasArgs {
				return nil, usagef("image %s: only one set of app arguments (end them with ---)", apps[len(apps)-1].image)
			}
			hasArgs = true
			a := &apps[len(apps)-1]
			for i++; i < len(rest) && rest[i] != "---"; i++ {
				a.args = append(a.args, rest[i])
			}
			if a.args == nil {
				a.args = []string{}
			}
		case strings.HasPrefix(w, "-") && w != "-":
			if len(apps) == 0 || (i > 0 && rest[i-1] == "---") {
				return nil, usagef("%s: expected an image before app flags", w)
			}
			a := &apps[len(apps)-1]
			flags := rest[i:]
			if end := slices.Index(flags, "---"); end >= 0 {
				flags = flags[:end] // pflag takes "---" for a bad flag
			}
			if err := fs.Parse(flags); err != nil {
				return nil, usagef("image %s: %v", a.image, err)
			}
			n := len(flags) - fs.NArg()
			if fs.ArgsLenAtDash() == 0 {
				n-- // leave "--" to start the arguments
			}
			if n < 1 {
				return nil, usagef("image %s: unexpected %q", a.image, w) // never loop
			}
			i += n - 1
			fs.Visit(func(f *pflag.Flag) { a.set[f.Name] = true })
		default:
			apps = append(apps, appArg{image: w, flags: defaults, set: map[string]bool{}})
			a := &apps[len(apps)-1]
			fs = pflag.NewFlagSet(w, pflag.ContinueOnError)
			fs.SetInterspersed(false)
			fs.SetOutput(devNull{})
			a.flags.register(fs)
			hasArgs = false
		}
	}
	if len(apps) == 0 {
		return nil, usagef("no image given")
	}
	return apps, nil
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// toApp converts the parsed flags of one app for pkg/prepare.
func (a appArg) toApp(imageID string) (prepare.App, error) {
	f := a.flags
	out := prepare.App{
		Image: imageID, Name: f.name, Args: a.args, User: f.user, Group: f.group, WorkDir: f.workDir,
		Env: f.env, EnvFiles: f.envFiles, ReadOnly: f.readOnly, Memory: f.memory, CPU: f.cpu,
		CapsRetain: f.capsRetain, CapsRemove: f.capsRemove, Seccomp: f.seccomp, NoNewPrivs: f.noNewPrivs,
	}
	if f.exec != "" {
		out.Exec = []string{f.exec}
	}
	if err := out.ParseIsolators(f.cpuShares, f.oomScoreAdj); err != nil {
		return out, usageError{err}
	}
	for _, m := range f.mounts {
		pm, err := prepare.ParseMount(m)
		if err != nil {
			return out, usageError{err}
		}
		out.Mounts = append(out.Mounts, pm)
	}
	for _, kv := range f.env {
		if !strings.Contains(kv, "=") {
			return out, usagef("--set-env %q: want KEY=VALUE", kv)
		}
	}
	return out, nil
}

func (f *podFlags) parseVolumes() ([]types.Volume, error) {
	var vols []types.Volume
	for _, s := range f.volumes {
		v, err := prepare.ParseVolume(s)
		if err != nil {
			return nil, usageError{err}
		}
		vols = append(vols, v)
	}
	return vols, nil
}

// registerNet registers the network flags, which run-prepared has too.
func (f *podFlags) registerNet(fs *pflag.FlagSet) {
	fs.StringVar(&f.netReq.Net, "net", "default", "network: default (a private network on the built-in bridge skiff0), NAME[,NAME...] (networks of <local-config>/net.d), host (share the host's), none (loopback only)")
	fs.StringArrayVarP(&f.netReq.Publish, "publish", "p", nil, "publish a pod port on the host: [HOSTIP:]HOSTPORT:PORT[/tcp|udp] (repeat)")
	fs.StringArrayVar(&f.netReq.Ports, "port", nil, "publish an app's appc port: NAME:[HOSTIP:]HOSTPORT (repeat)")
	fs.StringArrayVar(&f.netReq.DNS, "dns", nil, "a nameserver for the pod's resolv.conf (repeat), or host: the host's resolv.conf (the default)")
	fs.StringArrayVar(&f.netReq.DNSSearch, "dns-search", nil, "a search domain for the pod's resolv.conf (repeat)")
	fs.StringArrayVar(&f.netReq.DNSOpts, "dns-opt", nil, "a resolv.conf option, e.g. ndots:2 (repeat)")
	fs.StringArrayVar(&f.netReq.HostsEntries, "hosts-entry", nil, "add IP=NAME to every app's /etc/hosts (repeat)")
	fs.StringVar(&f.ipc, "ipc", "auto", "the pod's IPC namespace: auto or private (its own), parent (the host's; stage1 ns)")
}

func (f *podFlags) check() error {
	if err := f.netReq.Check(); err != nil {
		return err
	}
	if err := f.checkStage1(); err != nil {
		return err
	}
	if f.prepareOnly && (f.netReq.Net != "default" || f.netReq.Extra() || f.ipc != "" && f.ipc != "auto") {
		return usagef("prepare: give --net, --publish, --port, --dns, --hosts-entry and --ipc to run-prepared")
	}
	switch f.ipc {
	case "", "auto", "private", "parent":
	default:
		return usagef("--ipc=%s: want auto, private or parent", f.ipc)
	}
	switch f.pullPolicy {
	case "new", "update", "never":
	default:
		return usagef("--pull-policy=%s: want new, update or never", f.pullPolicy)
	}
	if f.privateUsers != "" && f.privateUsers != "auto" && f.privateUsers != "no" {
		return usagef("--private-users=%s: want auto or no", f.privateUsers)
	}
	if f.hostname != "" {
		if err := pod.CheckHostname(f.hostname); err != nil {
			return usagef("--hostname=%q: %v", f.hostname, err)
		}
	}
	return nil
}

// checkStage1 turns rkt's --stage1-KIND flags into the --stage1 reference
// that means the same: at most one of them and --stage1 may be given.
func (f *podFlags) checkStage1() error {
	var given []string
	if f.stage1Given {
		given = append(given, "--stage1")
	}
	ref := f.stage1
	for _, kind := range slices.Sorted(maps.Keys(f.stage1By)) {
		v := *f.stage1By[kind]
		if v == "" {
			continue
		}
		given = append(given, "--stage1-"+kind)
		switch kind {
		case "name":
			if fetch.IsPath(v) || strings.HasPrefix(v, "sha512-") || strings.Contains(v, "://") {
				return usagef("--stage1-name=%s: want an image name", v)
			}
			ref = v
		case "path":
			abs, err := filepath.Abs(v)
			if err != nil {
				return usagef("--stage1-path=%s: %v", v, err)
			}
			ref = abs
		case "url":
			if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
				return usagef("--stage1-url=%s: want an https:// URL", v)
			}
			ref = v
		case "hash":
			if !strings.HasPrefix(v, "sha512-") {
				return usagef("--stage1-hash=%s: want an image ID (sha512-...)", v)
			}
			ref = v
		case "from-dir":
			if strings.Contains(v, "/") {
				return usagef("--stage1-from-dir=%s: want a file name, no directory", v)
			}
			p, err := stage1.FromDirs(stage1.DefaultDirs(), v)
			if err != nil {
				return usagef("--stage1-from-dir=%s: %v", v, err)
			}
			ref = p
		}
	}
	if len(given) > 1 {
		return usagef("%s: give only one of them", strings.Join(given, ", "))
	}
	f.stage1 = ref
	return nil
}

// givenString is a string flag that records whether it was given.
type givenString struct {
	v     *string
	given *bool
}

func (g *givenString) String() string {
	if g.v == nil {
		return ""
	}
	return *g.v
}
func (g *givenString) Set(s string) error { *g.v, *g.given = s, true; return nil }
func (g *givenString) Type() string       { return "string" }

func inheritedEnv(on bool) []string {
	if !on {
		return nil
	}
	return os.Environ()
}
