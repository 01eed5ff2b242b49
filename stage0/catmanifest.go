package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
)

func newCatManifestCmd(g *globals) *cobra.Command {
	var uf uuidFile
	cmd := &cobra.Command{
		Use:   "cat-manifest UUID | --uuid-file=FILE",
		Short: "Print a pod's manifest",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := uf.pods(args)
			if err != nil {
				return err
			}
			p, err := pod.Load(g.dir, ids[0])
			if err != nil {
				return err
			}
			b, err := p.ReadFile(pod.ManifestFile, pod.MaxManifestSize)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("pod %s has no manifest yet: %w", p.UUID, err)
			}
			if err != nil {
				return fmt.Errorf("manifest of pod %s: %w", p.UUID, err)
			}
			_, err = g.stdout.Write(append(b, '\n'))
			return err
		},
	}
	uf.register(cmd.Flags())
	return cmd
}
