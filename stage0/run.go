package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/fetch"
	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/policy"
	"github.com/skiffpod/skiff/pkg/prepare"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/store"
)

const appUsage = `
Each IMAGE may be followed by flags for that app alone, then by arguments for
it after "--", ended by "---" when another image follows. App flags given
before the first image apply to every app.

  IMAGE [APP FLAGS] [-- ARGS... [---]] [IMAGE [APP FLAGS] ...]

An app's arguments run from "--" to "---" or the end; any other word after an
image and its flags is the next image, as in rkt (skiff run a.aci b.aci).

An IMAGE is an ACI file (a path: /x, ./x, ../x, or x.aci), an https:// URL, an
appc name (skiff.local/busybox:1.0, from the store or by discovery), or an image
ID or unique ID prefix. The run policy (/etc/skiff/policy.json, docs/policy.md)
must allow each image: by default an image fetched with --insecure-options=image
runs by name only when this run says --insecure-options=image too; any image
runs by its full ID.

App flags:
      --name NAME               app name (default: the last element of the image name)
      --exec PATH               run this program instead of the image's exec
      --user USER --group GROUP numbers, or names from the image's /etc/passwd and /etc/group
      --working-dir DIR         working directory
      --set-env KEY=VALUE       set a variable (repeat; highest precedence)
      --set-env-file FILE       KEY=VALUE lines (below --set-env)
      --mount volume=NAME,target=/PATH
      --memory 128M --cpu 500m  resource limits
      --cpu-shares 2048         CPU weight (1024 is the default's)
      --oom-score-adj N         -1000..1000 (raised to the lowest the host allows)
      --caps-retain CAPS / --caps-remove CAPS
      --seccomp mode=retain|remove[,errno=EPERM],SYSCALL,...  (replaces the default profile;
                                mode=retain,@appc.io/all turns it off; rkt's groups
                                @rkt/default-whitelist, @docker/default-blacklist, ...)
      --readonly-rootfs --no-new-privileges`

func newRunCmd(g *globals) *cobra.Command {
	var f podFlags
	cmd := &cobra.Command{
		Use:   "run [POD FLAGS] IMAGE [APP FLAGS] [-- ARGS... [---]] [IMAGE ...]",
		Short: "Run a pod: fetch its images, prepare it and start it in the chosen stage1",
		Long: `Run a pod in the foreground. skiff run exits with the status of the first app
that failed (0 when every app succeeded); skiff's own failures exit 254.

  skiff run bin/images/busybox.aci --exec /bin/echo -- hello
  skiff run --stage1=kvm --volume data,kind=empty bin/images/redis.aci --mount volume=data,target=/data
` + appUsage,
		Example: `  skiff --insecure-options=image run ./app.aci
  skiff run --net=none --memory=64M a.aci -- --verbose --- b.aci --user=1000`,
		DisableFlagParsing: true,
		RunE:               prepareThen(g, &f, func(p *pod.Pod) error { return execPod(g, p, &f) }),
	}
	f.register(cmd.Flags())
	f.registerPodManifest(cmd.Flags())
	return cmd
}

// prepareThen is the body of run and prepare: parse, prepare the pod, then
// hand the locked pod to then.
func prepareThen(g *globals, f *podFlags, then func(p *pod.Pod) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		apps, help, err := parseRunArgs(cmd, f, args)
		if err != nil || help {
			return err
		}
		p, err := preparePod(cmd.Context(), g, f, apps)
		if err != nil {
			return err
		}
		return then(p)
	}
}

// parseRunArgs parses pod flags (global ones included), then the apps.
func parseRunArgs(cmd *cobra.Command, f *podFlags, args []string) ([]appArg, bool, error) {
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	// Cobra leaves parsing to us (per-app flags follow each image), but its
	// ParseFlags also merges the global flags: let it parse, up to the image.
	cmd.DisableFlagParsing = false
	err := cmd.ParseFlags(args)
	cmd.DisableFlagParsing = true
	if err != nil {
		return nil, false, usageError{err}
	}
	if h, _ := fs.GetBool("help"); h {
		return nil, true, cmd.Help()
	}
	// DisableFlagParsing skips the root's pre-run: run it now that the
	// global flags are parsed.
	if pre := cmd.Root().PersistentPreRunE; pre != nil {
		if err := pre(cmd, nil); err != nil {
			return nil, false, err
		}
	}
	if err := f.check(); err != nil {
		return nil, false, err
	}
	if f.podManifest != "" {
		return nil, false, f.checkPodManifest(fs)
	}
	if f.sandbox {
		if fs.NArg() > 0 {
			return nil, false, usagef("app sandbox takes no image (skiff app add adds apps): got %q", fs.Arg(0))
		}
		if f.interactive {
			return nil, false, usagef("app sandbox: --interactive needs an app")
		}
		return nil, false, nil
	}
	apps, err := parseApps(fs.Args(), f.defaults)
	if err != nil {
		return nil, false, err
	}
	if len(apps) > podunit.MaxApps {
		return nil, false, usagef("%d apps: %v (at most %d)", len(apps), podunit.ErrTooManyApps, podunit.MaxApps)
	}
	if f.interactive && len(apps) != 1 {
		return nil, false, usagef("--interactive needs exactly one app, got %d", len(apps))
	}
	if len(f.signatures) > len(apps) {
		return nil, false, usagef("%d --signature flags for %d images", len(f.signatures), len(apps))
	}
	return apps, false, nil
}

// preparePod fetches every image and the stage1 and prepares the pod. The
// pod comes back locked, in the Preparing state.
func preparePod(ctx context.Context, g *globals, f *podFlags, apps []appArg) (*pod.Pod, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.uuidFileSave != "" { // refused before anything is prepared; checked again on write
		if err := safefile.CheckOutput(f.uuidFileSave, true); err != nil {
			return nil, fmt.Errorf("--uuid-file-save: %w", err)
		}
	}
	s, err := g.openStore()
	if err != nil {
		return nil, err
	}
	pol, err := policy.Load(g.localConfig)
	if err != nil {
		return nil, err
	}
	fe, err := g.fetcher(s, pol, f.pullPolicy, g.stderr)
	if err != nil {
		return nil, err
	}
	vols, err := f.parseVolumes()
	if err != nil {
		return nil, err
	}
	o := prepare.Options{DataDir: g.dir, Sandbox: f.sandbox, Privileged: f.privileged, Volumes: vols, InheritEnv: inheritedEnv(f.inheritEnv), NoOverlay: f.noOverlay, PrivateUsers: f.privateUsers == "auto", PidsLimit: pidsLimit(f.pidsLimit), Hostname: f.hostname, Insecure: g.insecureRun(), Platform: g.platform, Log: g.log}
	// From resolving the images until the pod has recorded its trees, an
	// image gc must wait (it could remove an image or a tree in between).
	release, err := s.Hold()
	if err != nil {
		return nil, err
	}
	defer release()
	if f.podManifest != "" {
		apps, err = podManifestApps(f.podManifest, &o)
		if err != nil {
			return nil, err
		}
		if f.interactive && len(apps) != 1 {
			return nil, usagef("--interactive needs exactly one app, got %d", len(apps))
		}
	}
	if o.Apps, err = resolveApps(ctx, g, s, fe, pol, apps, f.signatures); err != nil {
		return nil, err
	}
	if o.Stage1, o.Stage1Layers, err = resolveStage1(ctx, g, s, fe, pol, f.stage1); err != nil {
		return nil, err
	}
	p, err := prepare.Prepare(ctx, s, o)
	if err != nil {
		return nil, fmt.Errorf("prepare pod: %w", err)
	}
	if f.uuidFileSave != "" {
		b := []byte(p.UUID + "\n")
		var err error
		if f.sandbox {
			// An app sandbox runs at once and dies with a host crash: its
			// UUID's loss in one costs nothing, the two syncs do (on every
			// CRI sandbox's start, whose server reads the file at once).
			err = safefile.WriteUnsynced(f.uuidFileSave, b, 0o644)
		} else {
			err = safefile.WriteFile(f.uuidFileSave, b, 0o644, true)
		}
		if err != nil {
			p.Unlock()
			return nil, fmt.Errorf("--uuid-file-save: %w", err)
		}
	}
	for _, a := range o.Apps {
		s.Touch(a.Image)
	}
	return p, nil
}

// resolveApps resolves every app's image (fetching it as needed, with
// the detached signature at its position) and checks it and its layers
// against the run policy. The caller holds the store (Store.Hold).
func resolveApps(ctx context.Context, g *globals, s *store.Store, fe *fetch.Fetcher, pol *policy.Policy, apps []appArg, signatures []string) ([]prepare.App, error) {
	var out []prepare.App
	for i, a := range apps {
		sig := ""
		if i < len(signatures) {
			sig = signatures[i]
		}
		id, err := resolveImage(ctx, g, s, fe, a.image, sig)
		if err != nil {
			return nil, err
		}
		layers, err := g.admit(s, pol, a.image, id)
		if err != nil {
			return nil, err
		}
		app, err := a.toApp(id)
		if err != nil {
			return nil, err
		}
		app.Runtime = a.runtime
		app.Layers = layers
		out = append(out, app)
	}
	return out, nil
}

// execPod mounts a locked pod's trees, moves it to run and execs its
// stage1. It returns only on failure; a pod that is not started is left
// as it was found (run-prepared: prepared, nothing mounted) or removed
// (run: the pod it just prepared).
func execPod(g *globals, p *pod.Pod, f *podFlags) error {
	undo := func(err error) error {
		switch p.State {
		case pod.Preparing:
			if p.Transition(pod.Garbage) == nil {
				err = errors.Join(err, g.pods().Delete(p))
			}
		case pod.Prepared:
			err = errors.Join(err, mount.UnmountAll(p.Path()))
		case pod.Running: // run's pod, not started after all
			if p.Transition(pod.ExitedGarbage) == nil {
				err = errors.Join(err, g.pods().Delete(p))
			}
		}
		p.Unlock()
		return err
	}
	in, err := g.pods().Invocation(p)
	if err != nil {
		return undo(err)
	}
	hostname := f.hostname
	if hostname == "" {
		hostname = preparedHostname(p)
	}
	o := stage1.RunOptions{Net: f.netReq.Net, Hostname: hostname, Interactive: f.interactive, Mutable: f.sandbox}
	if f.ipc == "parent" {
		o.IPC = f.ipc
		s1, err := pod.ReadStage1(p.Path())
		if err == nil && !s1.Supports(pod.FeatureIPCParent) {
			err = usagef("--ipc=parent: stage1 %s cannot share the host's IPC namespace (stage1 ns can)", s1.Name)
		}
		if err != nil {
			return undo(err)
		}
	}
	if r, ok, err := prepare.PrivateUsers(p); err != nil {
		return undo(err)
	} else if ok {
		o.PrivateUsers = r.String()
	}
	// A pod's trees are mounted only to run it (docs/pod-lifecycle.md).
	if err := prepare.Mount(p); err != nil {
		return undo(err)
	}
	// A stage1 that can start while the network is attached gets the
	// namespace at once and is told when it is attached (by net-attach);
	// a pod that cannot get its network is not started, or stopped before
	// any app starts and removed (docs/networking.md). An app sandbox is
	// ready only once attached, so its boot overlaps the attach too (the
	// CRI's sandbox start). run-prepared, which must leave a refused pod
	// prepared, and a socket-activated pod (a connection starts its app's
	// unit at once) attach first.
	var netns string
	var job []byte
	overlap := p.State == pod.Preparing && os.Getenv("LISTEN_FDS") == ""
	if s1, err := pod.ReadStage1(p.Path()); err == nil && s1.Supports(pod.FeatureNetWait) && overlap {
		netns, job, err = g.podNet().Begin(p, f.netReq, hostname)
		if err != nil {
			return undo(err)
		}
	}
	if job == nil {
		netns, err = g.podNet().Attach(context.Background(), p, f.netReq, hostname)
		if err != nil {
			return undo(err)
		}
	}
	if netns != "" {
		o.Net, o.NetNS = "", netns
	}
	if err := p.Transition(pod.Running); err != nil {
		return undo(errors.Join(err, g.podNet().Detach(p)))
	}
	if job != nil {
		if o.NetWait, err = startNetAttach(g, job); err != nil {
			return undo(errors.Join(fmt.Errorf("network setup: %w", err), g.podNet().Detach(p)))
		}
	}
	g.log.Debug("exec stage1", "pod", p.UUID, "tree", in.Tree)
	err = in.Exec(o)
	if o.NetWait != nil {
		// The attach, which may go on, sees the stage1 gone: the pod is
		// left exited (gc detaches and removes it).
		o.NetWait.Close()
	}
	p.Unlock()
	return err
}

// preparedHostname is the hostname prepare recorded for p, else the
// default skiff-<uuid>.
func preparedHostname(p *pod.Pod) string {
	if b, err := p.ReadFile(pod.ManifestFile, pod.MaxManifestSize); err == nil {
		if pm, err := pod.ParseManifest(b); err == nil {
			if h, ok := pm.Annotations.Get(prepare.AnnotationHostname); ok && pod.CheckHostname(h) == nil {
				return h
			}
		}
	}
	return pod.MachineName(p.UUID)
}
