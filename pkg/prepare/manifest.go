package prepare

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// Manifest builds the pod manifest: one runtime app per App, each with a
// complete app section (the image's, with the user's overrides applied),
// and the pod's volumes, including an implicit empty volume for every
// image mount point the user left unsatisfied (as rkt did).
func Manifest(imgs Images, o Options) (*schema.PodManifest, error) {
	pm := schema.BlankPodManifest()
	for _, a := range o.Annotations {
		if strings.HasPrefix(a.Name.String(), "skiff.dev/") {
			return nil, fmt.Errorf("pod annotation %s: the skiff.dev/ prefix is skiff's own", a.Name)
		}
		pm.Annotations.Set(a.Name, a.Value)
	}
	pm.Ports = o.Ports
	vols := map[string]bool{}
	for _, v := range o.Volumes {
		if vols[v.Name.String()] {
			return nil, fmt.Errorf("volume %s given twice", v.Name)
		}
		vols[v.Name.String()] = true
		pm.Volumes = append(pm.Volumes, v)
	}
	names := map[string]bool{}
	for _, a := range o.Apps {
		im, err := imgs.Manifest(a.Image)
		if err != nil {
			return nil, fmt.Errorf("app image %s: %w", a.Image, err)
		}
		if err := checkPlatform(imgs, a.Image, im, o.Platform); err != nil {
			return nil, err
		}
		ra, err := runtimeApp(im, a, o.InheritEnv)
		if err != nil {
			return nil, err
		}
		name := ra.Name.String()
		if names[name] {
			// As rkt: a pod's apps are addressed by name (status, logs
			// --app, enter), so a second app of that name is refused.
			return nil, fmt.Errorf("app name %q is not unique: give each app its own --name", name)
		}
		names[name] = true
		for _, mp := range ra.App.MountPoints {
			if mounted(ra.Mounts, mp) {
				continue
			}
			if !vols[mp.Name.String()] {
				// An image mount point nobody satisfied gets an empty volume,
				// shared by every app that declares the same name.
				// appc wants an empty volume's mode and owner: rkt's defaults.
				// No readOnly: each app's mount point says (a volume's
				// readOnly would decide for all of them).
				mode, uid, gid := "0755", 0, 0
				pm.Volumes = append(pm.Volumes, types.Volume{Name: mp.Name, Kind: "empty", Mode: &mode, UID: &uid, GID: &gid})
				vols[mp.Name.String()] = true
			}
			ra.Mounts = append(ra.Mounts, schema.Mount{Volume: mp.Name, Path: mp.Path})
		}
		for _, m := range ra.Mounts {
			if !vols[m.Volume.String()] {
				return nil, fmt.Errorf("app %s: mount of volume %s, which no --volume defines", name, m.Volume)
			}
		}
		pm.Apps = append(pm.Apps, *ra)
	}
	limit := o.PidsLimit
	switch {
	case limit == 0:
		limit = podunit.DefaultPidsLimit
	case limit < 0:
		limit = 0 // the annotation's "no limit"
	}
	pm.Annotations.Set(podunit.AnnotationPidsLimit, strconv.FormatInt(limit, 10))
	if len(o.Insecure) > 0 {
		pm.Annotations.Set(pod.AnnotationInsecureOptions, strings.Join(o.Insecure, ","))
	}
	if o.Hostname != "" {
		pm.Annotations.Set(AnnotationHostname, o.Hostname)
	}
	if o.Privileged {
		pm.Annotations.Set(pod.AnnotationPrivileged, "true")
	}
	if o.Sandbox {
		pm.Annotations.Set(pod.AnnotationSandbox, "true")
	}
	return pm, nil
}

// platformer knows the platform of an OCI image, whose synthesized
// manifest has no labels (store.Store.Platform).
type platformer interface {
	Platform(id string) (os, arch string, err error)
}

// checkPlatform refuses an app image for another os or arch than want.
// Only a manifest without the labels (an OCI image's, or an ACI's that
// has none) needs the store's answer.
func checkPlatform(imgs Images, id string, im *schema.ImageManifest, want string) error {
	_, hasOS := im.Labels.Get("os")
	_, hasArch := im.Labels.Get("arch")
	p, ok := imgs.(platformer)
	if !ok || hasOS || hasArch {
		return aci.CheckPlatform(im, want)
	}
	os, arch, err := p.Platform(id)
	if err != nil {
		return err
	}
	return aci.CheckOSArch(string(im.Name), os, arch, want)
}

// mounted says whether a mount satisfies mount point mp: one of its
// volume's name (appc), or one at its path (--mount).
func mounted(ms []schema.Mount, mp types.MountPoint) bool {
	for _, m := range ms {
		if m.Volume == mp.Name || path.Clean(m.Path) == path.Clean(mp.Path) {
			return true
		}
	}
	return false
}

// mountTargets resolves the targets of --mount flags: a target that is not
// an absolute path is the name of one of the image's mount points, whose
// path it stands for, or else a path relative to the app's root (as rkt
// took it).
func mountTargets(ms []schema.Mount, mps []types.MountPoint) []schema.Mount {
	var out []schema.Mount
	for _, m := range ms {
		if !strings.HasPrefix(m.Path, "/") {
			p := "/" + m.Path
			for _, mp := range mps {
				if mp.Name.String() == m.Path {
					p = mp.Path
				}
			}
			m.Path = path.Clean(p)
		}
		out = append(out, m)
	}
	return out
}

func runtimeApp(im *schema.ImageManifest, a App, inherit []string) (*schema.RuntimeApp, error) {
	if a.Runtime != nil {
		return givenApp(im, a)
	}
	name := a.Name
	if name == "" {
		name = AppName(im.Name.String())
	}
	acn, err := types.NewACName(name)
	if err != nil {
		return nil, fmt.Errorf("app name %q: %w", name, err)
	}
	app := types.App{User: "0", Group: "0"}
	if im.App != nil {
		// Copy through JSON so the override never aliases the image's manifest.
		b, _ := json.Marshal(im.App)
		if err := json.Unmarshal(b, &app); err != nil {
			return nil, fmt.Errorf("app %s: %w", name, err)
		}
	}
	if len(a.Exec) > 0 {
		app.Exec = append(types.Exec{}, a.Exec...)
	} else if n, ok := cmdLength(im); ok && a.Args != nil && n <= len(app.Exec) {
		// An OCI image: arguments replace its Cmd, as podman does.
		app.Exec = app.Exec[:len(app.Exec)-n]
	}
	app.Exec = append(app.Exec, a.Args...)
	if len(app.Exec) == 0 {
		return nil, fmt.Errorf("app %s: image %s has no exec; give one with --exec", name, im.Name)
	}
	if a.User != "" {
		app.User = a.User
	}
	if a.Group != "" {
		app.Group = a.Group
	}
	app.SupplementaryGIDs = slices.Concat(app.SupplementaryGIDs, a.SupplementaryGIDs)
	if a.WorkDir != "" {
		app.WorkingDirectory = a.WorkDir
	}
	env, err := environment(inherit, app.Environment, a.EnvFiles, a.Env)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	app.Environment = env
	if err := isolators(&app, a); err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	ra := &schema.RuntimeApp{
		Name:           *acn,
		Image:          schema.RuntimeImage{Name: &im.Name, Labels: im.Labels},
		App:            &app,
		ReadOnlyRootFS: a.ReadOnly,
		Mounts:         mountTargets(a.Mounts, app.MountPoints),
	}
	if err := imageID(ra, im, a.Image); err != nil {
		return nil, err
	}
	if v, ok := im.Annotations.Get(oci.StopSignalAnnotation); ok {
		ra.Annotations.Set(podunit.StopSignalAnnotation, v)
	}
	if a.PIDNamespace {
		ra.Annotations.Set(pod.AnnotationPIDNamespace, "app")
	}
	if a.Stdin {
		ra.Annotations.Set(pod.AnnotationStdin, "true")
		if a.StdinOnce {
			ra.Annotations.Set(pod.AnnotationStdinOnce, "true")
		}
	}
	if a.SeccompProfile != "" {
		ra.Annotations.Set(pod.AnnotationSeccomp, a.SeccompProfile)
	}
	if a.Privileged {
		ra.Annotations.Set(pod.AnnotationPrivileged, "true")
	}
	if len(a.MaskedPaths) > 0 {
		b, _ := json.Marshal(a.MaskedPaths)
		ra.Annotations.Set(pod.AnnotationMaskedPaths, string(b))
	}
	if len(a.ReadonlyPaths) > 0 {
		b, _ := json.Marshal(a.ReadonlyPaths)
		ra.Annotations.Set(pod.AnnotationReadonlyPaths, string(b))
	}
	if len(a.HostDevices) > 0 {
		b, _ := json.Marshal(a.HostDevices)
		ra.Annotations.Set(pod.AnnotationHostDevices, string(b))
	}
	if len(a.SharedMounts) > 0 {
		b, _ := json.Marshal(a.SharedMounts)
		ra.Annotations.Set(pod.AnnotationSharedMounts, string(b))
	}
	return ra, nil
}

// imageID sets ra's image ID to id, the store's: an OCI image's is its
// sha512 form, as appc wants.
func imageID(ra *schema.RuntimeApp, im *schema.ImageManifest, id string) error {
	if v, ok := im.Annotations.Get(oci.ManifestSHA512Annotation); ok && strings.HasPrefix(id, "sha256-") {
		id = v
	}
	h, err := types.NewHash(id)
	if err != nil {
		return fmt.Errorf("app %s: image id %q: %w", ra.Name, id, err)
	}
	ra.Image.ID = *h
	return nil
}

// givenApp is the runtime app a user's pod manifest gave (--pod-manifest),
// as given, with the image's app section where it has none (as rkt) and
// the image named as the store has it.
func givenApp(im *schema.ImageManifest, a App) (*schema.RuntimeApp, error) {
	ra := *a.Runtime
	ra.Mounts, ra.Annotations = slices.Clone(ra.Mounts), slices.Clone(ra.Annotations)
	app := ra.App
	if app == nil {
		app = im.App
	}
	if app == nil {
		return nil, fmt.Errorf("app %s: no app section in the pod manifest or the image manifest", ra.Name)
	}
	// Copy through JSON so the pod never aliases the caller's or the image's.
	b, _ := json.Marshal(app)
	ra.App = new(types.App)
	if err := json.Unmarshal(b, ra.App); err != nil {
		return nil, fmt.Errorf("app %s: %w", ra.Name, err)
	}
	if len(ra.App.Exec) == 0 {
		return nil, fmt.Errorf("app %s: no exec in the pod manifest or the image manifest", ra.Name)
	}
	ra.Image = schema.RuntimeImage{Name: &im.Name, Labels: im.Labels}
	if err := imageID(&ra, im, a.Image); err != nil {
		return nil, err
	}
	ra.Mounts = mountTargets(ra.Mounts, ra.App.MountPoints)
	return &ra, nil
}

// environment applies appc's precedence: inherited host env, then the
// image's, then env files in order, then --set-env in order; later wins.
func environment(inherit []string, image types.Environment, files, set []string) (types.Environment, error) {
	var env types.Environment
	add := func(kv, from string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("environment %s: %q is not KEY=VALUE", from, kv)
		}
		env.Set(k, v)
		return nil
	}
	for _, kv := range inherit {
		add(kv, "inherited")
	}
	for _, ev := range image {
		env.Set(ev.Name, ev.Value)
	}
	for _, f := range files {
		lines, err := envFile(f)
		if err != nil {
			return nil, err
		}
		for _, kv := range lines {
			if err := add(kv, f); err != nil {
				return nil, err
			}
		}
	}
	for _, kv := range set {
		if err := add(kv, "--set-env"); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// envFile reads KEY=VALUE lines, each trimmed of surrounding spaces;
// blank lines and comments (lines starting with # or ;) are skipped, as
// rkt's --set-env-file did.
func envFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") {
			continue
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	return out, nil
}

func isolators(app *types.App, a App) error {
	replace := func(iso types.Isolator, names ...types.ACIdentifier) {
		app.Isolators.ReplaceIsolatorsByName(iso, names)
	}
	capNames := []types.ACIdentifier{types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName}
	switch {
	case len(a.CapsRetain) > 0 && len(a.CapsRemove) > 0:
		return fmt.Errorf("--caps-retain and --caps-remove cannot be combined")
	case len(a.CapsRetain) > 0:
		s, err := types.NewLinuxCapabilitiesRetainSet(normCaps(a.CapsRetain)...)
		if err != nil {
			return fmt.Errorf("--caps-retain: %w", err)
		}
		iso, err := s.AsIsolator()
		if err != nil {
			return err
		}
		replace(*iso, capNames...)
	case len(a.CapsRemove) > 0:
		s, err := types.NewLinuxCapabilitiesRevokeSet(normCaps(a.CapsRemove)...)
		if err != nil {
			return fmt.Errorf("--caps-remove: %w", err)
		}
		iso, err := s.AsIsolator()
		if err != nil {
			return err
		}
		replace(*iso, capNames...)
	}
	if a.Memory != "" {
		m, err := types.NewResourceMemoryIsolator(a.Memory, a.Memory)
		if err != nil {
			return fmt.Errorf("--memory %q: %w", a.Memory, err)
		}
		replace(m.AsIsolator(), types.ResourceMemoryName)
	}
	if a.CPU != "" {
		c, err := types.NewResourceCPUIsolator(a.CPU, a.CPU)
		if err != nil {
			return fmt.Errorf("--cpu %q: %w", a.CPU, err)
		}
		replace(c.AsIsolator(), types.ResourceCPUName)
	}
	if a.CPUShares != nil {
		replace(a.CPUShares.AsIsolator(), types.LinuxCPUSharesName)
	}
	if a.OOMScoreAdj != nil {
		replace(a.OOMScoreAdj.AsIsolator(), types.LinuxOOMScoreAdjName)
	}
	if a.NoNewPrivs {
		var iso types.Isolator
		if err := json.Unmarshal([]byte(`{"name":"`+types.LinuxNoNewPrivilegesName+`","value":true}`), &iso); err != nil {
			return err
		}
		replace(iso, types.LinuxNoNewPrivilegesName)
	}
	if a.Seccomp != "" {
		iso, err := seccompIsolator(a.Seccomp)
		if err != nil {
			return fmt.Errorf("--seccomp: %w", err)
		}
		replace(*iso, types.LinuxSeccompRetainSetName, types.LinuxSeccompRemoveSetName)
	}
	return nil
}

// ParseIsolators sets CPUShares and OOMScoreAdj from rkt's --cpu-shares
// and --oom-score-adj values; an empty value leaves its isolator unset.
func (a *App) ParseIsolators(cpuShares, oomScoreAdj string) error {
	if cpuShares != "" {
		n, err := strconv.Atoi(cpuShares)
		if err == nil {
			a.CPUShares, err = types.NewLinuxCPUShares(n)
		}
		if err != nil {
			return fmt.Errorf("--cpu-shares=%s: %w", cpuShares, err)
		}
	}
	if oomScoreAdj != "" {
		n, err := strconv.Atoi(oomScoreAdj)
		if err == nil {
			a.OOMScoreAdj, err = types.NewLinuxOOMScoreAdj(n)
		}
		if err != nil {
			return fmt.Errorf("--oom-score-adj=%s: %w", oomScoreAdj, err)
		}
	}
	return nil
}

// normCaps accepts "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN".
func normCaps(in []string) []string {
	var out []string
	for _, c := range in {
		for _, c := range strings.Split(c, ",") {
			c = strings.ToUpper(strings.TrimSpace(c))
			if c == "" {
				continue
			}
			if !strings.HasPrefix(c, "CAP_") {
				c = "CAP_" + c
			}
			out = append(out, c)
		}
	}
	return out
}

// seccompIsolator parses rkt's --seccomp form: mode=retain|remove,errno=E,sys1,sys2.
func seccompIsolator(s string) (*types.Isolator, error) {
	mode, errno := "", ""
	var calls []string
	for _, f := range strings.Split(s, ",") {
		switch {
		case strings.HasPrefix(f, "mode="):
			mode = strings.TrimPrefix(f, "mode=")
		case strings.HasPrefix(f, "errno="):
			errno = strings.TrimPrefix(f, "errno=")
		case strings.HasPrefix(f, "@") && !appspec.SeccompGroupKnown(f):
			return nil, fmt.Errorf("%s: %s", f, appspec.UnknownGroup)
		case f != "":
			calls = append(calls, f)
		}
	}
	if len(calls) == 0 {
		return nil, fmt.Errorf("%q names no syscalls", s)
	}
	switch mode {
	case "retain":
		r, err := types.NewLinuxSeccompRetainSet(errno, calls...)
		if err != nil {
			return nil, err
		}
		return r.AsIsolator()
	case "remove":
		r, err := types.NewLinuxSeccompRemoveSet(errno, calls...)
		if err != nil {
			return nil, err
		}
		return r.AsIsolator()
	}
	return nil, fmt.Errorf("mode %q: want mode=retain or mode=remove", mode)
}

// ParseVolume parses rkt's --volume form: NAME,kind=host|empty,source=PATH,readOnly=true.
func ParseVolume(s string) (types.Volume, error) {
	v, err := types.VolumeFromString(s)
	if err != nil {
		return types.Volume{}, fmt.Errorf("--volume %q: %w", s, err)
	}
	if v.Kind == "host" {
		if !strings.HasPrefix(v.Source, "/") {
			return types.Volume{}, fmt.Errorf("--volume %q: source must be an absolute host path", s)
		}
		if _, err := os.Stat(v.Source); err != nil {
			return types.Volume{}, fmt.Errorf("--volume %q: %w", s, err)
		}
	}
	return *v, nil
}

// ParseMount parses rkt's --mount form: volume=NAME,target=PATH, or
// target=NAME, an image mount point's name (resolved by Manifest).
func ParseMount(s string) (schema.Mount, error) {
	var m schema.Mount
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "volume":
			n, err := types.NewACName(v)
			if err != nil {
				return m, fmt.Errorf("--mount %q: %w", s, err)
			}
			m.Volume = *n
		case "target":
			m.Path = v
		default:
			return m, fmt.Errorf("--mount %q: unknown key %q (want volume=NAME,target=PATH)", s, k)
		}
	}
	if m.Volume == "" || m.Path == "" {
		return m, fmt.Errorf("--mount %q: want volume=NAME,target=/PATH or target=MOUNT-POINT-NAME", s)
	}
	return m, nil
}

// cmdLength returns how many trailing exec entries of an OCI image came
// from its config's Cmd (pkg/store's synthesized manifest says).
func cmdLength(im *schema.ImageManifest) (int, bool) {
	v, ok := im.Annotations.Get(oci.CmdLengthAnnotation)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0
}
