package appspec

import (
	"encoding/json"
	"fmt"
	"path"
	"runtime"
	"slices"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	podabi "github.com/skiffpod/skiff/pkg/pod"
)

// applySecurity applies the CRI's security context, which stage0 put in
// the app's annotations (pod.FeatureAppSecurity), over what the isolators
// decided. s.Mounts must be set. The paths whose mounts stay shared
// (pod.AnnotationSharedMounts) go to the spec's annotation of that name,
// checked and cleaned.
func applySecurity(s *specs.Spec, an types.Annotations) error {
	var shared []string
	if v, ok := an.Get(podabi.AnnotationSeccomp); ok {
		s.Linux.Seccomp = nil
		if v != podabi.SeccompUnconfined {
			var sc specs.LinuxSeccomp
			if err := json.Unmarshal([]byte(v), &sc); err != nil {
				return fmt.Errorf("annotation %s: %w", podabi.AnnotationSeccomp, err)
			}
			s.Linux.Seccomp = &sc
		}
	}
	for _, p := range []struct {
		name string
		dst  *[]string
	}{{podabi.AnnotationMaskedPaths, &s.Linux.MaskedPaths}, {podabi.AnnotationReadonlyPaths, &s.Linux.ReadonlyPaths}, {podabi.AnnotationSharedMounts, &shared}} {
		v, ok := an.Get(p.name)
		if !ok {
			continue
		}
		var paths []string
		if err := json.Unmarshal([]byte(v), &paths); err != nil {
			return fmt.Errorf("annotation %s: %w", p.name, err)
		}
		for _, x := range paths {
			if !path.IsAbs(x) {
				return fmt.Errorf("annotation %s: path %q is not absolute", p.name, x)
			}
			if !slices.Contains(*p.dst, path.Clean(x)) {
				*p.dst = append(*p.dst, path.Clean(x))
			}
		}
	}
	if len(shared) > 0 {
		// stage2 reads it there (launch.SharedMounts).
		b, _ := json.Marshal(shared)
		s.Annotations[podabi.AnnotationSharedMounts] = string(b)
	}
	if v, _ := an.Get(podabi.AnnotationPrivileged); v == "true" {
		// What runc gives a privileged container: no filter, nothing
		// masked or write-protected, sysfs and the cgroup tree writable.
		s.Linux.Seccomp = nil
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		for i, m := range s.Mounts {
			if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
				s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
			}
		}
	}
	return nil
}

// profile is a seccomp profile as Docker and the CRI's Localhost profiles
// write it (moby's profiles/seccomp): the OCI linux.seccomp fields, plus
// the older single "name", and rules kept only for some capabilities or
// architectures.
type profile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Flags           []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath    string                   `json:"listenerPath,omitempty"`
	Syscalls        []struct {
		specs.LinuxSyscall
		Name     string     `json:"name,omitempty"`
		Includes ruleFilter `json:"includes"`
		Excludes ruleFilter `json:"excludes"`
	} `json:"syscalls"`
}

// ruleFilter says when a rule of a profile applies.
type ruleFilter struct {
	Arches []string `json:"arches,omitempty"`
	Caps   []string `json:"caps,omitempty"`
}

// ParseSeccompProfile reads a seccomp profile in Docker's (and the OCI
// runtime spec's) JSON format into the filter of an app whose bounding
// set is caps. As Docker does, a rule is kept only if the app holds every
// capability its includes name and none its excludes name, and the
// architecture (GOARCH, as Docker names it) is among its included ones
// and not among its excluded ones; calls this architecture does not have
// are dropped, as libseccomp ignores them. The profile's architectures
// are not read: skiff's filters allow the native one only (docs/seccomp.md).
// minKernel is not read either (the rule is kept). Flags and a
// notification listener are refused.
func ParseSeccompProfile(b []byte, caps []string) (*specs.LinuxSeccomp, error) {
	var p profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	switch {
	case p.DefaultAction == "":
		return nil, fmt.Errorf("seccomp profile: %w: no defaultAction", ErrIsolator)
	case len(p.Flags) > 0:
		return nil, fmt.Errorf("seccomp profile: %w: flags %v", ErrIsolator, p.Flags)
	case p.ListenerPath != "":
		return nil, fmt.Errorf("seccomp profile: %w: a notification listener", ErrIsolator)
	}
	sc := &specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet}
	held := func(c string) bool {
		return slices.Contains(caps, capNames([]types.LinuxCapability{types.LinuxCapability(c)})[0])
	}
	for _, r := range p.Syscalls {
		in, ex := r.Includes, r.Excludes
		if !all(in.Caps, held) || slices.ContainsFunc(ex.Caps, held) ||
			len(in.Arches) > 0 && !slices.Contains(in.Arches, runtime.GOARCH) || slices.Contains(ex.Arches, runtime.GOARCH) {
			continue
		}
		rule := r.LinuxSyscall
		if r.Name != "" {
			rule.Names = append(slices.Clone(rule.Names), r.Name)
		}
		if rule.Names = known(slices.Clone(rule.Names)); len(rule.Names) > 0 {
			sc.Syscalls = append(sc.Syscalls, rule)
		}
	}
	return sc, nil
}

func all(s []string, f func(string) bool) bool {
	return !slices.ContainsFunc(s, func(x string) bool { return !f(x) })
}

// hostDevices adds the host's device nodes that a privileged app of a
// privileged pod gets (pod.AnnotationHostDevices) to the spec's devices,
// after those it has.
func hostDevices(s *specs.Spec, pm *schema.PodManifest, an types.Annotations) error {
	v, ok := an.Get(podabi.AnnotationHostDevices)
	if !ok {
		return nil
	}
	if p, _ := an.Get(podabi.AnnotationPrivileged); p != "true" || !privilegedPod(pm) {
		return fmt.Errorf("annotation %s: the app is not privileged in a privileged pod", podabi.AnnotationHostDevices)
	}
	var devs []specs.LinuxDevice
	if err := json.Unmarshal([]byte(v), &devs); err != nil {
		return fmt.Errorf("annotation %s: %w", podabi.AnnotationHostDevices, err)
	}
	for _, d := range devs {
		if !path.IsAbs(d.Path) || (d.Type != "c" && d.Type != "b") {
			return fmt.Errorf("annotation %s: device %q of type %q", podabi.AnnotationHostDevices, d.Path, d.Type)
		}
		d.Path = path.Clean(d.Path)
		if !slices.ContainsFunc(s.Linux.Devices, func(o specs.LinuxDevice) bool { return o.Path == d.Path }) {
			s.Linux.Devices = append(s.Linux.Devices, d)
		}
	}
	return nil
}

func privilegedPod(pm *schema.PodManifest) bool {
	v, _ := pm.Annotations.Get(podabi.AnnotationPrivileged)
	return v == "true"
}
