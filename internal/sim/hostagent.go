package sim

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// hostAgent replays the v25.10 host agent's start-up (`/hostagent serve`):
// reach the API server, find the DPU, register DPUDevice and DPUNode as the
// host agent's ServiceAccount. Lines are klog-formatted as a Go program's.
func hostAgent(ctx context.Context, api apiCaller, ns, node string, noDPU bool) ([]string, int) {
	var out []string
	logf := func(sev byte, file string, format string, a ...any) {
		out = append(out, fmt.Sprintf("%c%s %d hostagent.go:%s] %s", sev, time.Now().UTC().Format("0102 15:04:05.000000"), 1, file, fmt.Sprintf(format, a...)))
	}
	logf('I', "88", "starting host agent on node %s", node)
	if v, ok := api.version(ctx); !ok {
		logf('E', "97", "unable to reach the Kubernetes API server: %s", strings.TrimSpace(lastLine(v)))
		return out, 1
	}
	if noDPU {
		logf('E', "131", "no DPU found on this host (looked for PCI device IDs 0xa2dc, 0xa2d6)")
		return out, 1
	}
	serial := strings.ToLower(serialNumber(node))
	if _, _, ok := api.get(ctx, "dpudevice", ns, serial, "{.metadata.name}"); !ok {
		manifest := fmt.Sprintf("apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: DPUDevice\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  serialNumber: %s\n", serial, ns, serialNumber(node))
		if msg, ok := api.apply(ctx, manifest); !ok {
			logf('E', "164", "failed to create DPUDevice %s: %s", serial, oneLine(msg))
			return out, 1
		}
	}
	if msg, ok := api.patchStatus(ctx, "dpudevice", ns, serial, fmt.Sprintf(`{"status":{"pciAddress":%q}}`, PCIAddress)); !ok {
		logf('E', "171", "failed to update DPUDevice %s status: %s", serial, oneLine(msg))
		return out, 1
	}
	uid, stderr, _ := api.get(ctx, "node", "", node, "{.metadata.uid}")
	if uid == "" {
		logf('E', "180", "failed to get node %s: %s", node, oneLine(stderr))
		return out, 1
	}
	if _, _, ok := api.get(ctx, "dpunode", ns, node, "{.metadata.name}"); !ok {
		manifest := fmt.Sprintf("apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: DPUNode\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  nodeRebootMethod:\n    hostAgent: {}\n  dpus:\n  - name: %s\n", node, ns, serial)
		if msg, ok := api.apply(ctx, manifest); !ok {
			logf('E', "193", "failed to create DPUNode %s: %s", node, oneLine(msg))
			return out, 1
		}
	}
	logf('I', "210", "host agent ready: DPUDevice %s, DPUNode %s", serial, node)
	return out, 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
