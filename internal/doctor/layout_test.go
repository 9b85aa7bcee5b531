package doctor_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The stages stay in their lanes (STYLE §7): plan and policy are pure (they
// import no cluster client themselves; evidence's types come with its
// collector), and no stage imports the facade, the CLI or the sim.
func TestStageImports(t *testing.T) {
	const mod = "github.com/dpfdoctor/dpfdoctor/internal/"
	for pkg, banned := range map[string][]string{
		"plan":   {mod + "kube", "k8s.io/client-go/kubernetes", "k8s.io/client-go/rest", mod + "apply", mod + "verify"},
		"policy": {mod + "kube", "k8s.io/client-go/kubernetes", "k8s.io/client-go/rest", mod + "apply", mod + "verify"},
		"apply":  {mod + "doctor", mod + "cli", mod + "sim", mod + "verify", mod + "evidence"},
		"verify": {mod + "doctor", mod + "cli", mod + "sim", mod + "apply"},
		"doctor": {mod + "cli", mod + "sim"},
	} {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "../"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := "\n" + string(out)
		for _, b := range banned {
			if strings.Contains(deps, "\n"+b+"\n") {
				t.Errorf("internal/%s imports %s", pkg, b)
			}
		}
	}
}
