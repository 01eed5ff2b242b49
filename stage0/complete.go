package main

import (
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1"
)

// Dynamic shell completion (cobra's `skiff completion bash|zsh|fish`):
// pod UUIDs, image names and --stage1 values, read from --dir as given on
// the command line being completed. Completion never creates the data dir
// and never fails: a problem gives no suggestions.

type completeFunc = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

// completePods suggests the pods' UUIDs, described by state and apps, for
// the first argument only, or for every one when many is set.
func completePods(g *globals, many bool) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 && !many {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return podUUIDs(g.dir, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

func podUUIDs(dir, prefix string) []string {
	pods, err := pod.List(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range pods {
		if !strings.HasPrefix(p.UUID, prefix) {
			continue
		}
		st, err := p.Status()
		if err != nil {
			continue
		}
		out = append(out, p.UUID+"\t"+string(st.State)+" "+strings.Join(st.AppList, ","))
	}
	return out
}

// completeImages suggests the names of the stored images, for the first
// argument only, or for every one when many is set; files too (an ACI).
func completeImages(g *globals, many bool) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 && !many {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return imageNames(g.dir, toComplete), cobra.ShellCompDirectiveDefault
	}
}

func imageNames(dir, prefix string) []string {
	if _, err := os.Stat(dir); err != nil {
		return nil // no store yet: do not make one
	}
	s, err := (&globals{dir: dir}).openStore()
	if err != nil {
		return nil
	}
	imgs, err := s.List()
	if err != nil {
		return nil
	}
	var out []string
	for _, im := range imgs {
		if im.Name != "" && strings.HasPrefix(im.Name, prefix) && !slices.Contains(out, im.Name) {
			out = append(out, im.Name)
		}
	}
	return out
}

// stage1Names suggests the short --stage1 names of the installed stage1
// images; paths complete as files.
func stage1Names(toComplete string) []string {
	var out []string
	for _, s := range stage1.List(stage1.DefaultDirs()) {
		if s.Err == "" && strings.HasPrefix(s.Name, toComplete) {
			out = append(out, s.Name+"\t"+s.Image+" "+s.Version)
		}
	}
	return out
}

// completeRun completes run and prepare, whose flags cobra does not parse
// (their apps take flags of their own): the value of --stage1, --dir,
// then image names.
func completeRun(g *globals) completeFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		dir := g.dir
		for i, a := range args {
			if v, ok := strings.CutPrefix(a, "--dir="); ok {
				dir = v
			} else if a == "--dir" && i+1 < len(args) {
				dir = args[i+1]
			}
		}
		if v, ok := strings.CutPrefix(toComplete, "--stage1="); ok {
			names := stage1Names(v)
			for i := range names {
				names[i] = "--stage1=" + names[i]
			}
			return names, cobra.ShellCompDirectiveDefault
		}
		switch {
		case len(args) > 0 && args[len(args)-1] == "--stage1":
			return stage1Names(toComplete), cobra.ShellCompDirectiveDefault
		case strings.HasPrefix(toComplete, "-"):
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return imageNames(dir, toComplete), cobra.ShellCompDirectiveDefault
	}
}

// registerCompletions sets the completion of every command that takes
// pods or images, and of --stage1 wherever cobra parses it.
func registerCompletions(g *globals, root *cobra.Command) {
	pod1, pods := completePods(g, false), completePods(g, true)
	image1, images := completeImages(g, false), completeImages(g, true)
	fileAfterPod := func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return pod1(cmd, args, toComplete)
		}
		return nil, cobra.ShellCompDirectiveDefault
	}
	for path, fn := range map[string]completeFunc{
		"status": pod1, "cat-manifest": pod1, "enter": pod1, "logs": pod1, "run-prepared": pod1, "export": fileAfterPod,
		"stop": pods, "rm": pods,
		"fetch": images, "image rm": images, "image export": image1, "image cat-manifest": image1, "image extract": image1,
		"image render": image1, "image push": image1, "image tag": image1,
		"run": completeRun(g), "prepare": completeRun(g),
	} {
		cmd, _, err := root.Find(strings.Fields(path))
		if err != nil || cmd == root {
			panic("completion for a missing command: " + path)
		}
		cmd.ValidArgsFunction = fn
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("stage1") != nil && !c.DisableFlagParsing {
			c.RegisterFlagCompletionFunc("stage1", func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				return stage1Names(toComplete), cobra.ShellCompDirectiveDefault
			})
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}
