package pod

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

// The stage1 ABI, version 3. docs/stage1-abi.md is the prose of this file;
// change both together and bump ABIVersion for anything a stage1 must learn.
const (
	// ABIVersion is the newest interface version this skiff speaks.
	ABIVersion = 3

	// Annotations in a stage1 image manifest that name its entrypoints
	// (absolute paths inside the stage1 rootfs) and its interface version.
	AnnotationVersion = "skiff.dev/stage1/interface-version"
	AnnotationRun     = "skiff.dev/stage1/run"
	AnnotationEnter   = "skiff.dev/stage1/enter"
	AnnotationStop    = "skiff.dev/stage1/stop"
	AnnotationGC      = "skiff.dev/stage1/gc"
	// AnnotationFeatures lists, comma-separated, the optional features
	// the stage1 offers (FeatureMetadata, ...). Stage0 sends nothing
	// different for them: they say what a pod gets.
	AnnotationFeatures = "skiff.dev/stage1/features"

	// FeatureMetadata: every app gets AC_METADATA_URL, the pod's appc
	// metadata service (docs/metadata.md).
	FeatureMetadata = "metadata"

	// Since version 3, optional together: the app sandbox (docs/app-sandbox.md).
	AnnotationAppAdd   = "skiff.dev/stage1/app-add"
	AnnotationAppStart = "skiff.dev/stage1/app-start"
	AnnotationAppStop  = "skiff.dev/stage1/app-stop"
	AnnotationAppRm    = "skiff.dev/stage1/app-rm"

	// FeatureDebug (since version 3): enter takes --mount-image and
	// --cap-add, for skiff debug (docs/debug.md).
	FeatureDebug = "debug"
	// DebugMountPoint is where enter --mount-image mounts the tools image
	// for the command (docs/debug.md): in the app's /dev, a tmpfs that is
	// no part of the app's image.
	DebugMountPoint = "/dev/.skiff-debug"
	// FeatureTTY: enter takes --tty (the command on a pseudo-terminal of
	// its own, docs/stage1-abi.md).
	FeatureTTY = "tty"
	// FeatureAttach: an app with AnnotationStdin "true" reads its stdin
	// from, and writes its output also to, whoever attaches with enter
	// --attach (docs/stage1-abi.md).
	FeatureAttach = "attach"
	// FeatureStats: enter takes --stats (no command): the app's CPU and
	// memory use as one JSON AppStats on stdout, for a stage1 whose apps'
	// cgroups the host cannot read (stage1-kvm: they are in the guest).
	FeatureStats = "stats"
	// FeatureResources: enter takes --resources=JSON (no command): the
	// running app's memory and CPU limits become the AppResources given,
	// for a stage1 whose apps' cgroups the host cannot write (stage1-kvm).
	FeatureResources = "resources"
	// FeaturePortForward: enter takes --port-forward=PORT (no app, no
	// command): the caller's stdin and stdout are a connection to PORT on
	// the pod's loopback, for a stage1 whose pod the host cannot dial in
	// its network namespace (stage1-kvm: the apps listen in the guest).
	FeaturePortForward = "port-forward"
	// AnnotationStdin, on an app of the pod manifest: "true" gives the
	// app a stdin that enter --attach reaches (FeatureAttach);
	// AnnotationStdinOnce "true" closes it when the first attach with
	// stdin ends.
	AnnotationStdin     = "skiff.dev/stdin"
	AnnotationStdinOnce = "skiff.dev/stdin-once"
	// FeaturePrivateUsers: run takes --private-users=UID:COUNT (a user
	// namespace per pod, docs/user-namespaces.md).
	FeaturePrivateUsers = "private-users"
	// FeatureIPCParent: run takes --ipc=parent, which keeps the pod in
	// the host's IPC namespace (rkt's --ipc=parent); without it the pod
	// has one of its own, as with --ipc=private.
	FeatureIPCParent = "ipc-parent"
	// FeatureNetWait: run takes --net-wait=FD with --netns, a stream
	// socket on which stage0 reports the pod's network attach, which
	// goes on while the stage1 starts: the stage1 starts no app before
	// it read "ok" (docs/stage1-abi.md, "The network attach overlaps").
	FeatureNetWait = "net-wait"
	// FeatureAppPIDNamespace: an app whose runtime app carries
	// AnnotationPIDNamespace "app" runs in a PID namespace of its own
	// (its /proc/1 is the app), below the pod's.
	FeatureAppPIDNamespace = "app-pid-namespace"
	// AnnotationPIDNamespace, on an app of the pod manifest: "app" asks
	// for the app's own PID namespace (FeatureAppPIDNamespace).
	AnnotationPIDNamespace = "skiff.dev/pid-namespace"
	// AnnotationInsecureOptions, on the pod manifest: the protections
	// `--insecure-options` turned off for the pod's apps, a comma list of
	// "capabilities" (every capability), "paths" (no masked or read-only
	// /proc and /sys paths, no device cgroup) and "seccomp" (no filter).
	AnnotationInsecureOptions = "skiff.dev/insecure-options"
	// FeatureAppSecurity: a stage1 honours the annotations below on an
	// app of the pod manifest (the CRI's security context,
	// docs/kubernetes.md). Stage0 sets them only for a stage1 with it.
	FeatureAppSecurity = "app-security"
	// AnnotationSeccomp: the app's seccomp filter, replacing its seccomp
	// isolators and skiff's default profile: SeccompUnconfined for none
	// at all, or an OCI runtime-spec linux.seccomp object in JSON.
	AnnotationSeccomp = "skiff.dev/seccomp"
	// SeccompUnconfined is the AnnotationSeccomp value for no filter.
	SeccompUnconfined = "unconfined"
	// AnnotationPrivileged "true": the app gets what a privileged
	// container gets (docs/kubernetes.md): no seccomp filter, no masked
	// or read-only paths, /sys writable.
	AnnotationPrivileged = "skiff.dev/privileged"
	// AnnotationMaskedPaths and AnnotationReadonlyPaths: JSON arrays of
	// absolute paths masked, or made read-only, in the app, in addition
	// to skiff's own.
	AnnotationMaskedPaths   = "skiff.dev/masked-paths"
	AnnotationReadonlyPaths = "skiff.dev/readonly-paths"
	// FeatureSharedMounts: a stage1 honours AnnotationSharedMounts.
	FeatureSharedMounts = "shared-mounts"
	// AnnotationSharedMounts, on an app of the pod manifest: a JSON array
	// of absolute paths in the app whose mounts, as the pod sees them when
	// the app starts, stay in their peer groups in the app's mount
	// namespace (every other mount there is a slave): mounts the app makes
	// below them reach their peers, the host's included (the CRI's
	// Bidirectional mount propagation).
	AnnotationSharedMounts = "skiff.dev/shared-mounts"
	// FeatureHostDevices: a stage1 honours AnnotationHostDevices on a
	// privileged app (AnnotationPrivileged) of a privileged pod (the pod
	// manifest's AnnotationPrivileged "true", skiff app sandbox
	// --privileged).
	FeatureHostDevices = "host-devices"
	// AnnotationHostDevices, on an app of the pod manifest: a JSON array
	// of OCI runtime-spec linux devices, the host's device nodes, which
	// the app gets in its /dev and may use.
	AnnotationHostDevices = "skiff.dev/host-devices"

	// EnvLockFD names the environment variable that carries the number of
	// the inherited file descriptor holding the pod's exclusive lock.
	EnvLockFD = "SKIFF_LOCK_FD"
	// EnvDebug is set to "1" when skiff runs with --debug.
	EnvDebug = "SKIFF_DEBUG"

	// Paths inside the stage1 rootfs, as the pod's init sees them.
	InPodAppsDir   = "/opt/stage2"       // one directory per app: <app>/rootfs, <app>/manifest
	InPodStatusDir = "/skiff/status"     // written by stage1: <app> holds the decimal exit status
	InPodReadyFile = "/skiff/ready"      // created by stage1 once every app has started
	InPodNetReady  = "/skiff/net-ready"  // created by stage1 once the pod's network is attached (FeatureNetWait)
	InPodOOMDir    = "/skiff/oom-killed" // written by stage1: <app> exists when the kernel's OOM killer ended the app

	// Files and directories inside the pod directory.
	ManifestFile      = "pod"                         // appc pod manifest, written by stage0
	Stage1Dir         = "stage1"                      // the stage1 image: manifest + rootfs
	Stage1Manifest    = "stage1/manifest"             // stage1 image manifest
	Stage1Rootfs      = "stage1/rootfs"               // stage1 root filesystem (overlay or copy)
	AppsDir           = Stage1Rootfs + InPodAppsDir   // InPodAppsDir seen from the pod directory
	OverlayDir        = "overlay"                     // upper and work dirs of the pod's overlays
	PidFile           = "pid"                         // written by stage1: host pid of the pod's init
	PpidFile          = "ppid"                        // or: host pid whose only child is the pod's init
	AppStatusDir      = Stage1Rootfs + InPodStatusDir // InPodStatusDir seen from the pod directory
	ReadyFile         = Stage1Rootfs + InPodReadyFile // InPodReadyFile seen from the pod directory
	AppOOMDir         = Stage1Rootfs + InPodOOMDir    // InPodOOMDir seen from the pod directory
	ExitedGarbageMark = "gc-marked"                   // timestamp of the move to exited-garbage
	CreatedFile       = "created"                     // stage0's: timestamp of the pod's creation
	StartedFile       = "started"                     // stage0's: timestamp of the move to run (stage1 started)
	NetDir            = "net"                         // stage0's: the pod's CNI attachment records and results
	NetResolvConf     = NetDir + "/resolv.conf"       // since version 2, with --netns: the pod's resolv.conf
	NetHosts          = NetDir + "/hosts"             // since version 2, with --netns: lines for every app's /etc/hosts
	PrivateUsersFile  = "private-users"               // stage0's: the pod's uid range, UID:COUNT, with --private-users
	AppsFile          = "apps"                        // stage0's: what list shows of the manifest, and which manifest (apps.go)

	// ExitFailure is the exit status of skiff, a stage1 entrypoint or
	// stage2 when it fails itself (254, as rkt); apps' statuses pass through.
	ExitFailure = 254
)

// AppDir returns the directory of app name inside the pod directory.
func AppDir(app string) string { return AppsDir + "/" + app }

// InPodAppDir returns the directory of app name inside the stage1 rootfs.
func InPodAppDir(app string) string { return InPodAppsDir + "/" + app }

// AppRootfs returns the rootfs of app name inside the pod directory.
func AppRootfs(app string) string { return AppDir(app) + "/rootfs" }

// AppManifest returns the path of app name's image manifest inside the pod directory.
func AppManifest(app string) string { return AppDir(app) + "/manifest" }

// Stage1 is a parsed stage1 image manifest: the entrypoints it offers and the
// ABI version it implements.
type Stage1 struct {
	Name        string
	Version     int
	entrypoints map[string]string
	features    []string
}

// Entrypoint names.
const (
	EntrypointRun   = "run"
	EntrypointEnter = "enter"
	EntrypointStop  = "stop"
	EntrypointGC    = "gc"
	// The app sandbox's (version 3): each changes one app of a running
	// pod that was run with --mutable.
	EntrypointAppAdd   = "app-add"
	EntrypointAppStart = "app-start"
	EntrypointAppStop  = "app-stop"
	EntrypointAppRm    = "app-rm"
)

// AppEntrypoints are the app sandbox's entrypoints: a stage1 offers all
// or none of them.
var AppEntrypoints = []string{EntrypointAppAdd, EntrypointAppStart, EntrypointAppStop, EntrypointAppRm}

var entrypointAnnotations = map[string]string{
	EntrypointRun:   AnnotationRun,
	EntrypointEnter: AnnotationEnter,
	EntrypointStop:  AnnotationStop,
	EntrypointGC:    AnnotationGC,

	EntrypointAppAdd:   AnnotationAppAdd,
	EntrypointAppStart: AnnotationAppStart,
	EntrypointAppStop:  AnnotationAppStop,
	EntrypointAppRm:    AnnotationAppRm,
}

// ParseStage1 checks that m describes a stage1 this skiff can drive.
func ParseStage1(m *schema.ImageManifest) (*Stage1, error) {
	s := &Stage1{Name: m.Name.String(), entrypoints: map[string]string{}}
	v, ok := m.Annotations.Get(AnnotationVersion)
	if !ok {
		return nil, fmt.Errorf("stage1 %s: %w: no %s annotation", s.Name, ErrNotStage1, AnnotationVersion)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("stage1 %s: %w: interface version %q", s.Name, ErrNotStage1, v)
	}
	if n > ABIVersion {
		return nil, fmt.Errorf("stage1 %s: %w: needs interface version %d, skiff speaks %d", s.Name, ErrNotStage1, n, ABIVersion)
	}
	s.Version = n
	for ep, ann := range entrypointAnnotations {
		if p, ok := m.Annotations.Get(ann); ok {
			s.entrypoints[ep] = p
		}
	}
	if f, ok := m.Annotations.Get(AnnotationFeatures); ok {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				s.features = append(s.features, name)
			}
		}
	}
	if _, ok := s.entrypoints[EntrypointRun]; !ok {
		return nil, fmt.Errorf("stage1 %s: %w: no %s annotation", s.Name, ErrNotStage1, AnnotationRun)
	}
	return s, nil
}

// ReadStage1 parses the stage1 manifest of the pod in dir.
func ReadStage1(dir string) (*Stage1, error) {
	b, err := safefile.ReadFileAt(dir, Stage1Manifest, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("read stage1 manifest: %w", err)
	}
	var m schema.ImageManifest
	if err := strictjson.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse stage1 manifest: %w", err)
	}
	return ParseStage1(&m)
}

// Supports reports whether the stage1 offers entrypoint or feature x
// (Entrypoint*, Feature*).
func (s *Stage1) Supports(x string) bool {
	_, ok := s.entrypoints[x]
	return ok || slices.Contains(s.features, x)
}

// SupportsApps reports whether the stage1 offers the app sandbox: version
// 3 or newer, with every app entrypoint.
func (s *Stage1) SupportsApps() bool {
	if s.Version < 3 {
		return false
	}
	for _, ep := range AppEntrypoints {
		if !s.Supports(ep) {
			return false
		}
	}
	return true
}

// Entrypoint returns the path, inside the stage1 rootfs, of entrypoint ep.
func (s *Stage1) Entrypoint(ep string) (string, error) {
	p, ok := s.entrypoints[ep]
	if !ok {
		return "", fmt.Errorf("stage1 %s: %w: %s", s.Name, ErrUnsupported, ep)
	}
	return p, nil
}

// Stage1Annotations returns the annotations a stage1 image manifest carries
// for the given entrypoints and features; image recipes use it so they
// cannot drift from the constants above.
func Stage1Annotations(entrypoints map[string]string, features ...string) types.Annotations {
	var a types.Annotations
	a.Set(types.ACIdentifier(AnnotationVersion), strconv.Itoa(ABIVersion))
	for ep, p := range entrypoints {
		a.Set(types.ACIdentifier(entrypointAnnotations[ep]), p)
	}
	if len(features) > 0 {
		a.Set(types.ACIdentifier(AnnotationFeatures), strings.Join(features, ","))
	}
	return a
}
