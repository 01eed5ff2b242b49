package kvm

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/pkg/vm/agent"
	"github.com/skiffpod/skiff/stage1-kvm/guest"
)

var _ stage1kit.AppIsolator = Isolator{}

// sandboxMiB is what a sandbox's VM gets beyond the guest's own needs:
// its apps come after the VM is sized.
const sandboxMiB = 4 * appDefaultMiB

// App does app entrypoint ep for app a.App of the running app sandbox
// (docs/app-sandbox.md): the files on the host, in the tree the guest
// shares, as run writes its apps'; the guest's systemd through the agent.
// The app's rootfs, which stage0 mounted below the share, reaches the
// guest through 9p (qemu crosses mounts: multidevs=remap).
func (Isolator) App(_ *slog.Logger, ep string, a pod.AppArgs) error {
	if _, err := qemuPid(); err != nil {
		return err
	}
	unit := podunit.UnitName(a.App)
	switch ep {
	case pod.EntrypointAppAdd:
		o, err := podunit.ReadAppOptions()
		if err != nil {
			return fmt.Errorf("add app %s: %w", a.App, err)
		}
		bundle, err := podunit.AppBundle(o)
		if err != nil {
			return err
		}
		if _, err := podunit.AddApp(a.App, bundle); err != nil {
			return err
		}
		return systemctl("daemon-reload")
	case pod.EntrypointAppStart:
		if err := podunit.ClearStatus(a.App); err != nil {
			return err
		}
		return systemctl("start", unit)
	case pod.EntrypointAppStop:
		return systemctl("stop", unit)
	case pod.EntrypointAppRm:
		if systemctl("is-active", "--quiet", unit) == nil {
			return fmt.Errorf("remove app %s: %w: it is running, stop it first", a.App, ErrUsage)
		}
		if err := podunit.RemoveApp(a.App); err != nil {
			return err
		}
		return systemctl("daemon-reload")
	}
	return fmt.Errorf("%s: %w: unknown app entrypoint", ep, ErrUsage)
}

// systemctl runs the guest's systemctl with args through the agent.
func systemctl(args ...string) error {
	c, err := dialControl()
	if err != nil {
		return err
	}
	defer c.close()
	c.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	what := "systemctl " + strings.Join(args, " ")
	if err := c.Send(agent.Message{Op: agent.OpRun, Args: append([]string{guest.SystemctlPath, "--no-ask-password"}, args...)}); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	m, err := c.Recv()
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case m.Op == agent.OpError:
		return fmt.Errorf("%s: %w", what, guest.Codes.Err(m))
	case m.Op != agent.OpExit:
		return fmt.Errorf("%s: unexpected %q", what, m.Op)
	case m.Code != 0:
		return fmt.Errorf("%s: exit status %d", what, m.Code)
	}
	return nil
}
