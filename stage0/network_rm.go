package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
)

func newNetworkRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a network's file and its bridge; refused while a pod of this data dir is on it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			nets, dir, err := networks(g)
			if err != nil {
				return err
			}
			n := nets[name]
			switch {
			case n == nil:
				return fmt.Errorf("network rm: unknown network %q (no %s/*.conflist defines it)", name, dir)
			case n.File == "":
				return fmt.Errorf("network rm %s: the built-in network cannot be removed", name)
			}
			pods, err := pod.List(g.dir)
			if err != nil {
				return err
			}
			for _, p := range pods {
				res, _, _ := cni.Cached(p.File(pod.NetDir))
				if slices.ContainsFunc(res, func(r cni.Result) bool { return r.Network == name }) {
					return fmt.Errorf("network rm %s: pod %s is on it (stop it and run gc first)", name, p.UUID)
				}
			}
			if err := os.Remove(n.File); err != nil {
				return fmt.Errorf("network rm: %w", err)
			}
			if err := cni.RemoveNetworkRules(n); err != nil {
				return fmt.Errorf("network rm: %w", err)
			}
			return removeBridge(n.Bridge())
		},
	}
}

// removeBridge deletes bridge name if it exists and nothing is attached.
func removeBridge(name string) error {
	br, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if name == "" || errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("network rm: bridge %s: %w", name, err)
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return nil // not ours to remove
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("network rm: %w", err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			return fmt.Errorf("network rm: bridge %s still has %s attached (left in place)", name, l.Attrs().Name)
		}
	}
	if err := netlink.LinkDel(br); err != nil {
		return fmt.Errorf("network rm: bridge %s: %w", name, err)
	}
	return nil
}
