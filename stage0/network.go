package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage pod networks: the built-in default and <local-config>/net.d/*.conflist",
	}
	cmd.AddCommand(newNetworkListCmd(g), newNetworkInspectCmd(g), newNetworkCreateCmd(g), newNetworkRmCmd(g))
	return cmd
}

// networks loads every network; bad files are reported on stderr.
func networks(g *globals) (map[string]*cni.Network, string, error) {
	def, err := cni.DefaultNetwork(cni.DefaultBridge, cni.DefaultSubnet, ipamDir)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(g.localConfig, netDirName)
	nets, lerr := cni.Load(dir, []string{cni.PluginDir}, def)
	if lerr != nil {
		fmt.Fprintf(g.stderr, "skiff: warning: %s\n", strings.ReplaceAll(lerr.Error(), "\n", "\nskiff: warning: "))
	}
	return nets, dir, nil
}

// networkInfo is one line of network list.
type networkInfo struct {
	Name    string         `json:"name"`
	File    string         `json:"file,omitempty"` // "" for the built-in network
	Bridge  string         `json:"bridge,omitempty"`
	Subnets []netip.Prefix `json:"subnets"`
}

func newNetworkListCmd(g *globals) *cobra.Command {
	var f format
	var noLegend bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the networks pods can ask for with --net",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			nets, _, err := networks(g)
			if err != nil {
				return err
			}
			infos := []networkInfo{}
			for _, name := range slices.Sorted(maps.Keys(nets)) {
				n := nets[name]
				infos = append(infos, networkInfo{Name: n.Name, File: n.File, Bridge: n.Bridge(), Subnets: n.Subnets})
			}
			if f == "json" {
				return writeJSON(g.stdout, infos)
			}
			var rows [][]string
			for _, n := range infos {
				var subnets []string
				for _, s := range n.Subnets {
					subnets = append(subnets, s.String())
				}
				rows = append(rows, []string{n.Name, n.Bridge, strings.Join(subnets, ","), cmp.Or(n.File, "(built-in)")})
			}
			return table(g.stdout, []string{"NAME", "BRIDGE", "SUBNETS", "FILE"}, rows, noLegend)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line")
	return cmd
}

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Print a network's CNI configuration list",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nets, dir, err := networks(g)
			if err != nil {
				return err
			}
			n := nets[args[0]]
			if n == nil {
				return fmt.Errorf("network inspect: unknown network %q (no %s/*.conflist defines it)", args[0], dir)
			}
			_, err = fmt.Fprintf(g.stdout, "%s\n", strings.TrimSpace(string(n.Bytes())))
			return err
		},
	}
}

func newNetworkCreateCmd(g *globals) *cobra.Command {
	var subnet, bridge string
	cmd := &cobra.Command{
		Use:   "create NAME --subnet CIDR",
		Short: "Create a bridge network like the built-in one, as <local-config>/net.d/NAME.conflist",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if subnet == "" {
				return usagef("network create %s: --subnet is required", name)
			}
			if bridge == "" {
				bridge = "skiff-" + name
			}
			n, err := cni.BridgeNetwork(name, bridge, subnet, ipamDir)
			if err != nil {
				return usageError{fmt.Errorf("network create: %w", err)}
			}
			nets, dir, err := networks(g)
			if err != nil {
				return err
			}
			if o := nets[name]; o != nil {
				return fmt.Errorf("network create %s: it exists (%s)", name, cmp.Or(o.File, "built in"))
			}
			for _, o := range nets {
				if o.Bridge() == bridge {
					return fmt.Errorf("network create %s: bridge %s is network %s's", name, bridge, o.Name)
				}
				for _, a := range o.Subnets {
					if a.Overlaps(n.Subnets[0]) {
						return fmt.Errorf("network create %s: subnet %s overlaps network %s (%s)", name, subnet, o.Name, a)
					}
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("network create: %w", err)
			}
			file := filepath.Join(dir, name+".conflist")
			if err := safefile.WriteFile(file, append(n.Bytes(), '\n'), 0o644, false); err != nil {
				return fmt.Errorf("network create: %w", err)
			}
			fmt.Fprintln(g.stdout, file)
			return nil
		},
	}
	cmd.Flags().StringVar(&subnet, "subnet", "", "the network's IPv4 subnet, e.g. 172.16.40.0/24 (must not overlap another network's)")
	cmd.Flags().StringVar(&bridge, "bridge", "", "the bridge's name (default skiff-NAME)")
	return cmd
}

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
