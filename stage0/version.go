package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print skiff's version and the stage1 interface version it speaks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(g.stdout, "skiff version %s\n", version)
			if bi, ok := debug.ReadBuildInfo(); ok {
				fmt.Fprintf(g.stdout, "go version %s\n", bi.GoVersion)
			}
			fmt.Fprintf(g.stdout, "stage1 interface version %d\n", pod.ABIVersion)
			return nil
		},
	}
}
