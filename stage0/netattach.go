package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// netAttachFD is the socket a net-attach process is started with.
const netAttachFD = 3

// newNetAttachCmd is the process skiff run starts to attach a pod's
// network while the stage1 starts (podnet.Host.Serve): not for users.
func newNetAttachCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "net-attach",
		Short:  "attach a starting pod's network (started by skiff run)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Ctrl-C goes to the whole foreground group: the attach ends
			// by itself, then the stage1 acts on it.
			signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			unix.CloseOnExec(netAttachFD) // not for the CNI plugins
			c := os.NewFile(netAttachFD, "net-wait")
			err := g.podNet().Serve(context.Background(), c, g.pods().Remove)
			if err != nil {
				// The stage1, and with it skiff run, ends once c is closed:
				// say why first, or a shell prints its prompt before it.
				fmt.Fprintf(g.stderr, "skiff: %v\n", err)
				err = &exitCode{code: exitFailure}
			}
			c.Close()
			return err
		},
	}
}

// startNetAttach starts net-attach with job and returns the stage1's end
// of its socket (close-on-exec until Exec passes it).
func startNetAttach(g *globals, job []byte) (*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "socketpair", Err: err}
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "net-wait"), os.NewFile(uintptr(fds[1]), "net-attach")
	defer theirs.Close()
	args := []string{"--dir=" + g.dir, "--local-config=" + g.localConfig}
	if g.debug {
		args = append(args, "--debug")
	}
	cmd := exec.Command("/proc/self/exe", append(args, "net-attach")...)
	// The process outlives ours (exec'd into the stage1): only real files.
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{theirs} // netAttachFD
	if _, err := ours.Write(append(job, '\n')); err != nil {
		ours.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, err
	}
	return ours, nil
}
