package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/fetch"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/policy"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/store"
	"github.com/skiffpod/skiff/pkg/toolsimage"
)

// debugCaps are the capabilities --cap-add may give (docs/debug.md).
var debugCaps = []string{"CAP_SYS_PTRACE"}

func newDebugCmd(g *globals) *cobra.Command {
	var app, image string
	var capAdd []string
	cmd := &cobra.Command{
		Use:   "debug UUID [--app NAME] [--image IMAGE] [--cap-add=SYS_PTRACE] [-- CMD [ARGS...]]",
		Short: "Run tools from a tools image inside a running app that has none",
		Long: `Mount a tools image read-only at ` + pod.DebugMountPoint + ` for CMD alone, and run
CMD from it inside an app of a running pod, with the app's namespaces, cgroup,
user, capabilities and seccomp. Without CMD, runs sh. The default tools image is
` + toolsimage.DefaultFile + ` beside skiff or in /usr/lib/skiff (a shell, ps, ls, ip, ss,
nc, strace); --image names another: an ACI file (a path), or any image skiff
run takes (a name or ID in the store, docker://, oci:, oci-archive:,
docker-archive:), fetched and verified as for run and checked against the run
policy. --cap-add=SYS_PTRACE gives CMD
CAP_SYS_PTRACE on top of the app's, for strace. See docs/debug.md.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var caps []string
			for _, c := range capAdd {
				c = "CAP_" + strings.TrimPrefix(strings.ToUpper(c), "CAP_")
				if !slices.Contains(debugCaps, c) {
					return usagef("--cap-add=%s: only %s may be added", c, strings.Join(debugCaps, ", "))
				}
				caps = append(caps, c)
			}
			p, st, err := g.pods().Running("debug", args[0])
			if err != nil {
				return err
			}
			if app != "" && !slices.Contains(st.AppList, app) {
				return fmt.Errorf("debug pod %s: %w: %q (it has %s)", p.UUID, pod.ErrNoApp, app, strings.Join(st.AppList, ", "))
			}
			if app, err = onlyApp(p, st, app); err != nil {
				return err
			}
			if image == "" {
				if image, err = toolsimage.Default(stage1.DefaultDirs()); err != nil {
					return err
				}
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			rootfs, err := resolveTools(cmd.Context(), g, s, image)
			if err != nil {
				return err
			}
			in, err := g.pods().Invocation(p)
			if err != nil {
				return err
			}
			command := args[1:]
			if len(command) == 0 {
				command = []string{"sh"}
			}
			if len(caps) > 0 {
				g.log.Warn("debug: the command gets capabilities the app does not hold", "pod", p.UUID, "app", app, "cap-add", strings.Join(caps, ","))
			}
			// ^C and ^\ are for the command; skiff waits for it.
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, unix.SIGINT, unix.SIGQUIT)
			defer signal.Stop(sigs)
			code, err := in.Enter(app, command, stage1.EnterOptions{MountImage: rootfs, CapAdd: strings.Join(caps, ",")})
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitCode{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app to debug")
	cmd.Flags().StringVar(&image, "image", "", "the tools image: an ACI file, or an image as for run (default "+toolsimage.DefaultFile+")")
	cmd.Flags().StringSliceVar(&capAdd, "cap-add", nil, "a capability for the command beyond the app's: only SYS_PTRACE")
	return cmd
}

// resolveTools returns the tree of the tools image ref: an ACI file is
// imported as it is (trusted by location, as a stage1 file: the user
// named it), anything else is resolved as run resolves an app's image
// (fetched, verified, the run policy checked).
func resolveTools(ctx context.Context, g *globals, s *store.Store, ref string) (string, error) {
	if fetch.IsPath(ref) {
		return toolsimage.Rootfs(ctx, s, ref)
	}
	pol, err := policy.Load(g.localConfig)
	if err != nil {
		return "", err
	}
	f, err := g.fetcher(s, pol, "new", g.stderr)
	if err != nil {
		return "", err
	}
	id, err := resolveImage(ctx, g, s, f, ref, "")
	if err != nil {
		return "", fmt.Errorf("tools image %s: %w", ref, err)
	}
	if _, err := g.admit(s, pol, ref, id); err != nil {
		return "", fmt.Errorf("tools image: %w", err)
	}
	return toolsimage.Tree(ctx, s, id)
}
