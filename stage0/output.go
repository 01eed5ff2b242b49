package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
)

// format is the --format flag of commands that print lists.
type format string

func (f *format) register(fs *pflag.FlagSet) {
	fs.StringVar((*string)(f), "format", "table", "output format: table (for people), json (for scripts, one line) or json-pretty (indented)")
}

func (f format) check() error {
	if f != "table" && !f.isJSON() {
		return usagef("--format=%s: want table, json or json-pretty", string(f))
	}
	return nil
}

// isJSON reports whether f is one of the JSON formats.
func (f format) isJSON() bool { return f == "json" || f == "json-pretty" }

// write prints v as JSON, on one line or, with json-pretty, indented (rkt's
// two formats).
func (f format) write(w io.Writer, v any) error {
	if f == "json-pretty" {
		return writeJSON(w, v)
	}
	return json.NewEncoder(w).Encode(v)
}

// writeJSON prints a document (a manifest, a network's configuration)
// indented.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows aligned under a header, or tab-separated without one
// (--no-legend, for scripts that cut columns).
func table(w io.Writer, header []string, rows [][]string, noLegend bool) error {
	bw := bufio.NewWriter(w) // one write, not one per cell
	if noLegend {
		for _, r := range rows {
			fmt.Fprintln(bw, strings.Join(r, "\t"))
		}
		return bw.Flush()
	}
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// humanSize prints n bytes as 1.2 MB.
func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
