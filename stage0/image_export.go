package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/store"
)

func newImageExportCmd(g *globals) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "export IMAGE FILE",
		Short: "Write an image from the store to a file: an ACI, or an OCI image as an oci-archive (re-imports to the same ID)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withImage(g, args[0], func(s *store.Store, id string) error {
				err := safefile.Write(args[1], 0o644, overwrite, func(w io.Writer) error { return s.Export(id, w) })
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("image export: %w (use --overwrite to replace)", err)
				}
				if err != nil {
					return fmt.Errorf("image export: %w", err)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace FILE if it exists")
	return cmd
}
