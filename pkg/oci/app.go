package oci

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/appc/spec/schema/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// CmdLengthAnnotation, in the appc image manifest skiff synthesizes for
// an OCI image, counts the trailing exec entries that came from the
// config's Cmd: arguments given to run replace them, as podman does.
const CmdLengthAnnotation = "skiff.dev/oci-cmd-length"

// ManifestSHA512Annotation, in that synthesized manifest, holds
// "sha512-" and the sha512 of the image's manifest blob: an appc pod
// manifest names each app's image by a sha512 hash, which an OCI image
// (named by sha256) lacks; this one names the same bytes.
const ManifestSHA512Annotation = "skiff.dev/oci-manifest-sha512"

// StopSignalAnnotation, in that synthesized manifest, is the config's
// StopSignal as a number; pkg/prepare passes it to the pod's app.
const StopSignalAnnotation = "skiff.dev/oci-stop-signal"

// Override is what the user asked to run instead of the image's command,
// with podman's rules: Exec replaces Entrypoint and drops Cmd; Args
// (non-nil, even empty) replace Cmd.
type Override struct {
	Exec []string // skiff --exec
	Args []string // skiff run IMAGE -- ARGS...; nil means none given
}

// AppConfig is an image config mapped onto the appc app description that
// an ACI's manifest carries, so that stage1 and stage2 cannot tell which
// kind of image an app came from.
type AppConfig struct {
	App types.App
	// StopSignal is the signal that stops the app; 0 means the default
	// (SIGTERM).
	StopSignal unix.Signal
}

// App maps the image config c, with the user's overrides, onto an app.
// It is a pure function: names in User stay names (Group "" means the
// user's primary group) and a relative Exec[0] stays relative; both are
// resolved against the image's own /etc/passwd, /etc/group and PATH when
// the pod is prepared.
//
//	config          app
//	Entrypoint+Cmd  Exec (Override.Exec replaces both, Override.Args Cmd)
//	Env             Environment (later entries win)
//	User            User, Group ("" → 0:0; "name" → name, primary group)
//	WorkingDir      WorkingDirectory (must be absolute)
//	ExposedPorts    Ports, named "PORT-PROTO"
//	Volumes         MountPoints, named "volume-" + the path's words
//	Labels          UserAnnotations
//	StopSignal      AppConfig.StopSignal
func App(c ocispec.ImageConfig, ov Override) (*AppConfig, error) {
	a := &AppConfig{}
	app := &a.App
	switch {
	case ov.Exec != nil:
		app.Exec = slices.Concat(ov.Exec, ov.Args)
	case ov.Args != nil:
		app.Exec = slices.Concat(c.Entrypoint, ov.Args)
	default:
		app.Exec = slices.Concat(c.Entrypoint, c.Cmd)
	}
	if len(app.Exec) == 0 || app.Exec[0] == "" {
		return nil, fmt.Errorf("map image config: %w", ErrNoCommand)
	}
	for _, kv := range c.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("map image config: %w: Env entry %q is not NAME=VALUE", ErrBadConfig, kv)
		}
		app.Environment.Set(k, v)
	}
	var err error
	if app.User, app.Group, err = splitUser(c.User); err != nil {
		return nil, err
	}
	if c.WorkingDir != "" {
		if !path.IsAbs(c.WorkingDir) {
			return nil, fmt.Errorf("map image config: %w: WorkingDir %q is not absolute", ErrBadConfig, c.WorkingDir)
		}
		app.WorkingDirectory = path.Clean(c.WorkingDir)
	}
	if app.Ports, err = ports(c.ExposedPorts); err != nil {
		return nil, err
	}
	if app.MountPoints, err = mountPoints(c.Volumes); err != nil {
		return nil, err
	}
	if len(c.Labels) > 0 {
		app.UserAnnotations = types.UserAnnotations{}
		for k, v := range c.Labels {
			app.UserAnnotations[k] = v
		}
	}
	if a.StopSignal, err = signal(c.StopSignal); err != nil {
		return nil, err
	}
	return a, nil
}

// splitUser splits "user[:group]"; each part is a name or a number.
func splitUser(s string) (user, group string, err error) {
	if s == "" {
		return "0", "0", nil
	}
	user, group, hasGroup := strings.Cut(s, ":")
	if user == "" || hasGroup && group == "" || strings.ContainsAny(group, ":/") || strings.Contains(user, "/") {
		return "", "", fmt.Errorf("map image config: %w: User %q is not user[:group]", ErrBadConfig, s)
	}
	return user, group, nil
}

// ports maps "PORT[/PROTO]" keys.
func ports(exposed map[string]struct{}) ([]types.Port, error) {
	keys := make([]string, 0, len(exposed))
	for k := range exposed {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []types.Port
	for _, k := range keys {
		num, proto, _ := strings.Cut(k, "/")
		if proto == "" {
			proto = "tcp"
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || n == 0 || !slices.Contains([]string{"tcp", "udp", "sctp"}, proto) {
			return nil, fmt.Errorf("map image config: %w: ExposedPorts entry %q is not PORT[/tcp|udp|sctp]", ErrBadConfig, k)
		}
		name, err := types.NewACName(fmt.Sprintf("%d-%s", n, proto))
		if err != nil {
			return nil, err
		}
		out = append(out, types.Port{Name: *name, Protocol: proto, Port: uint(n), Count: 1})
	}
	return out, nil
}

var notNameChars = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9]+`) })

// mountPoints maps Volumes paths onto named mount points; names come from
// the path ("/var/lib/data" → "volume-var-lib-data"), made unique.
func mountPoints(vols map[string]struct{}) ([]types.MountPoint, error) {
	paths := make([]string, 0, len(vols))
	for p := range vols {
		if !path.IsAbs(p) || slices.Contains(strings.Split(p, "/"), "..") {
			return nil, fmt.Errorf("map image config: %w: volume %q is not an absolute path without \"..\"", ErrBadConfig, p)
		}
		paths = append(paths, path.Clean(p))
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	used := map[string]bool{}
	var out []types.MountPoint
	for _, p := range paths {
		base := "volume-" + strings.Trim(notNameChars().ReplaceAllString(strings.ToLower(p), "-"), "-")
		base = strings.TrimSuffix(base, "-")
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		acn, err := types.NewACName(name)
		if err != nil {
			return nil, fmt.Errorf("map image config: %w: volume %q: %w", ErrBadConfig, p, err)
		}
		out = append(out, types.MountPoint{Name: *acn, Path: p})
	}
	return out, nil
}

// signal parses "SIGTERM", "TERM" or "15".
func signal(s string) (unix.Signal, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("map image config: %w: StopSignal %q out of range", ErrBadConfig, s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("map image config: %w: StopSignal %q is not a signal", ErrBadConfig, s)
}
