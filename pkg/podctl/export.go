package podctl

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
)

// Export opens app of exited pod id for export, as rkt's export: its root
// filesystem as the app left it (the image with the app's changes: the
// pod's overlay, merged) under its image's manifest, without dependencies
// (the rootfs is flat). app may be "" when the pod has one app. The pod
// stays locked, so that nothing runs or removes it, until done is called;
// write writes the ACI.
func (c *Pods) Export(id, app string) (write func(io.Writer) error, done func(), err error) {
	p, err := pod.Load(c.Dir, id)
	if err != nil {
		return nil, nil, err
	}
	if err := p.TryLock(); err != nil {
		return nil, nil, fmt.Errorf("export pod %s: %w (only an exited pod can be exported)", p.UUID, err)
	}
	defer func() {
		if err != nil {
			p.Unlock()
		}
	}()
	st, err := p.Status()
	if err != nil {
		return nil, nil, err
	}
	if p.State != pod.Running && p.State != pod.ExitedGarbage {
		return nil, nil, fmt.Errorf("export pod %s: %w: it is %s, not exited", p.UUID, pod.ErrState, st.State)
	}
	switch {
	case app == "" && len(st.AppList) == 1:
		app = st.AppList[0]
	case app == "":
		return nil, nil, fmt.Errorf("export pod %s: it has apps %s: name one", p.UUID, strings.Join(st.AppList, ", "))
	case !slices.Contains(st.AppList, app):
		return nil, nil, fmt.Errorf("export pod %s: no app %q (it has %s)", p.UUID, app, strings.Join(st.AppList, ", "))
	}
	b, err := p.ReadFile(pod.AppManifest(app), pod.MaxManifestSize)
	if err != nil {
		return nil, nil, fmt.Errorf("export pod %s: %w", p.UUID, err)
	}
	m, err := aci.ParseManifest(b)
	if err != nil {
		return nil, nil, fmt.Errorf("export pod %s: app %s: %w", p.UUID, app, err)
	}
	m.Dependencies = nil
	// The app's root as the host sees it: the pod's overlay (mounted
	// again if a reboot took it), and nothing mounted below it, or the
	// walk would read a volume.
	if err := prepare.Mount(p); err != nil {
		return nil, nil, err
	}
	rootfs, err := filepath.Abs(p.File(pod.AppRootfs(app)))
	if err != nil {
		return nil, nil, err
	}
	under, err := mount.Under(rootfs)
	if err != nil {
		return nil, nil, err
	}
	if len(under) != 1 || under[0] != rootfs {
		return nil, nil, fmt.Errorf("export pod %s: app %s has mounts below its root: %s", p.UUID, app, strings.Join(under, ", "))
	}
	write = func(w io.Writer) error { return aci.Write(w, m, rootfs) }
	return write, p.Unlock, nil
}
