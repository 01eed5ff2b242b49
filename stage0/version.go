package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/vm"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

// versionInfo is what `skiff version` prints (rkt's lines, and the stage1
// images a short --stage1 name would pick).
type versionInfo struct {
	Version         string             `json:"version"`
	Stage1Interface int                `json:"stage1Interface"`
	AppcVersion     string             `json:"appcVersion"`
	GoVersion       string             `json:"goVersion"`
	Platform        string             `json:"platform"`
	Features        []string           `json:"features"`
	Stage1          []stage1.Installed `json:"stage1"`
}

// features says what this host lets skiff do: +logs when journalctl is
// there for `skiff logs`, +kvm when KVM pods get hardware virtualization
// (-kvm: software emulation, much slower).
func features() []string {
	f := []string{"+appc", "+oci"}
	if _, err := exec.LookPath("journalctl"); err == nil {
		f = append(f, "+logs")
	} else {
		f = append(f, "-logs")
	}
	if accel, _, _ := vm.ChooseAccel("", vm.ProbeHost()); accel == "kvm" {
		f = append(f, "+kvm")
	} else {
		f = append(f, "-kvm")
	}
	return f
}

func newVersionCmd(g *globals) *cobra.Command {
	var f format
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print skiff's version, the stage1 images' versions, Go's and the host's features",
		Long: `Print skiff's version, the stage1 interface version it speaks, the appc
version, the Go version and platform, the host's features (+logs: journalctl
found; +kvm: KVM pods get hardware virtualization, -kvm: software emulation)
and the stage1 image of each short --stage1 name. 'skiff --version' prints
the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			return printVersion(g, f)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func printVersion(g *globals, f format) error {
	v := versionInfo{
		Version:         version,
		Stage1Interface: pod.ABIVersion,
		AppcVersion:     schema.AppContainerVersion.String(),
		GoVersion:       runtime.Version(),
		Platform:        runtime.GOOS + "/" + runtime.GOARCH,
		Features:        features(),
		Stage1:          stage1.List(stage1.DefaultDirs()),
	}
	if f.isJSON() {
		if v.Stage1 == nil {
			v.Stage1 = []stage1.Installed{}
		}
		return f.write(g.stdout, v)
	}
	fmt.Fprintf(g.stdout, "skiff version %s\n", v.Version)
	fmt.Fprintf(g.stdout, "stage1 interface version %d\n", v.Stage1Interface)
	fmt.Fprintf(g.stdout, "appc version %s\n", v.AppcVersion)
	fmt.Fprintf(g.stdout, "go version %s %s\n", v.GoVersion, v.Platform)
	fmt.Fprintf(g.stdout, "features %s\n", strings.Join(v.Features, " "))
	for _, s := range v.Stage1 {
		if s.Err != "" {
			fmt.Fprintf(g.stdout, "stage1 %s: %s (unusable: %s)\n", s.Name, s.Path, s.Err)
			continue
		}
		fmt.Fprintf(g.stdout, "stage1 %s: %s version %s, interface %d, %s\n", s.Name, s.Image, s.Version, s.Interface, s.Path)
	}
	return nil
}
