package sandbox

import (
	"fmt"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// shims are the host tools dmsinit.sh calls besides kubectl, answering from
// the fake host: lspci (the VPD serial number), devlink, systemctl and ip.
// They shadow the host's own through PATH (/usr/local/sbin comes first).
func shims(h Host) map[string]string {
	var lspci, devlink, links strings.Builder
	for _, d := range h.Devices {
		short := strings.TrimPrefix(d.PCI, "0000:")
		model := "MT43244 BlueField-3 integrated ConnectX-7 network controller"
		if d.DeviceID == sim.DeviceBlueField2 {
			model = "MT42822 BlueField-2 integrated ConnectX-6 Dx network controller"
		}
		fmt.Fprintf(&lspci, "%s|%s) echo '%s Ethernet controller: Mellanox Technologies %s (rev 01)'\n", d.PCI, short, short, model)
		fmt.Fprintf(&lspci, "\tif [ \"$verbose\" = 1 ]; then printf '\\tSubsystem: Mellanox Technologies Device 0051\\n\\tCapabilities: [48] Vital Product Data\\n\\t\\tProduct Name: BlueField DPU\\n\\t\\tRead-only fields:\\n\\t\\t\\t[PN] Part number: 900-9D3B6-00CV-AA0\\n\\t\\t\\t[SN] Serial number: %s\\n\\t\\tEnd\\n'; fi ;;\n", d.Serial)
		fmt.Fprintf(&devlink, "echo 'pci/%s'\n", d.PCI)
		fmt.Fprintf(&links, "%s) echo '4: %s: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP mode DEFAULT group default qlen 1000'; exit 0 ;;\n", d.PF0, d.PF0)
	}
	rshim := "echo inactive; exit 3"
	if h.RshimOccupied {
		rshim = "echo active; exit 0"
	}
	return map[string]string{
		"lspci": `#!/bin/sh
# dpfdoctor sandbox shim: the fake host's PCI devices (lspci [-v…] [-s SLOT]).
slot="" verbose=0
while [ $# -gt 0 ]; do
	case "$1" in
	-s) slot="$2"; shift ;;
	-v*s) verbose=1; slot="$2"; shift ;;
	-v*) verbose=1 ;;
	esac
	shift
done
case "$slot" in
` + lspci.String() + `"") ;;
*) exit 0 ;;
esac
`,
		"devlink": "#!/bin/sh\n# dpfdoctor sandbox shim: accepts every change; `devlink dev` lists the DPUs.\n" +
			"if [ \"$1\" = dev ] && { [ $# -eq 1 ] || [ \"$2\" = show ]; }; then\n" + devlink.String() + "fi\nexit 0\n",
		"systemctl": "#!/bin/sh\n# dpfdoctor sandbox shim: the rshim service is active when it holds the DPU.\n" +
			"if [ \"$1\" = is-active ] && [ \"$2\" = rshim ]; then " + rshim + "; fi\nexit 0\n",
		"ip": "#!/bin/sh\n# dpfdoctor sandbox shim: `ip link show DEV` knows the DPUs' PFs only.\n" +
			"if [ \"$1\" = link ] && [ \"$2\" = show ] && [ -n \"$3\" ]; then\n\tcase \"$3\" in\n" + links.String() +
			"\t*) echo \"Device \\\"$3\\\" does not exist.\" >&2; exit 1 ;;\n\tesac\nfi\nexit 0\n",
	}
}
