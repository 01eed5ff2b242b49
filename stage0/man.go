package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenManCmd writes a man page for every command (skiff.1,
// skiff-run.1, ...) from the commands themselves: `make man` calls it.
// Hidden: it is for building packages, not for people.
func newGenManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages of every command to DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// SOURCE_DATE_EPOCH makes the pages reproducible, as a
			// Debian build sets it.
			date := time.Now()
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return fmt.Errorf("gen-man: SOURCE_DATE_EPOCH=%q: %w", s, err)
				}
				date = time.Unix(n, 0).UTC()
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("gen-man: %w", err)
			}
			root.DisableAutoGenTag = true
			h := &doc.GenManHeader{Title: "SKIFF", Section: "1", Date: &date, Source: "skiff " + version, Manual: "skiff manual"}
			if err := doc.GenManTree(root, h, args[0]); err != nil {
				return fmt.Errorf("gen-man: %w", err)
			}
			return nil
		},
	}
}
