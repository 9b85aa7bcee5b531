package lint

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// summarize renders findings as "certainty needs [flags]" lines, sorted.
func summarize(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		s := fmt.Sprintf("%s %s", f.Certainty, f.Needs())
		if f.StderrHidden {
			s += " [hidden]"
		}
		if f.FailureIgnored {
			s += " [ignored]"
		}
		if f.UnknownKind != "" {
			s += " [unknown kind]"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func lintSource(t *testing.T, src string, args *Args) *Report {
	t.Helper()
	s, err := ParseScript("t.sh", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return Lint([]*Script{s}, &rbac.Set{}, Options{Args: args, DefaultNamespace: "dpf-operator-system",
		Subject: access.ServiceAccount("dpf-operator-system", "sa")})
}

func TestInterpreter(t *testing.T) {
	noArgs := ArgsFromArgv(nil)
	tests := []struct {
		name string
		src  string
		args *Args // nil: unknown
		want []string
	}{
		{
			name: "break 2 and continue 2 leave the outer loop; return in a subshell ends only the subshell",
			src:  "for a in 1 2; do for b in x y; do break 2; done; kubectl get cm never-$a; done\nfor a in 1; do for b in x; do continue 2; done; kubectl get cm never2; done\nf() { ( return 1 ); kubectl get cm yes; }\nf\nkubectl get cm after\n",
			args: noArgs,
			want: []string{"certain get configmaps after in dpf-operator-system", "certain get configmaps yes in dpf-operator-system"},
		},
		{
			name: "kubectl held in a variable with a prefix",
			src:  "kc=/etc/kc\nkubectl_cmd=\"kubectl --kubeconfig $kc\"\n$kubectl_cmd get secret s1 -n ns1\n",
			args: noArgs,
			want: []string{"certain get secrets s1 in ns1"},
		},
		{
			name: "kubectl variable set in an unresolved branch: both alternatives are kubectl",
			src:  "kubectl_cmd=kubectl\nif [ -n \"$KUBECONFIG\" ]; then kubectl_cmd=\"kubectl --kubeconfig $KUBECONFIG\"; fi\n$kubectl_cmd get cm c1\n",
			args: noArgs,
			want: []string{"certain get configmaps c1 in dpf-operator-system"},
		},
		{
			name: "global flags before the verb, kind/name form, short name, kind first",
			src:  "kubectl -n x --context c get cm/y\nkubectl get cert z -n x\nname=n1\nkubectl get -o json DPUNode $name -n x\n",
			args: noArgs,
			want: []string{"certain get certificates.cert-manager.io z in x", "certain get configmaps y in x",
				"certain get dpunodes.provisioning.dpu.nvidia.com n1 in x"},
		},
		{
			name: "list, all namespaces, watch, cluster-scoped",
			src:  "kubectl get pods\nkubectl get secrets -A\nkubectl get node worker-1 -o jsonpath='{.metadata.uid}'\nkubectl get pods -w -n x\n",
			args: noArgs,
			want: []string{"certain get nodes worker-1 (cluster-scoped)", "certain list pods in dpf-operator-system",
				"certain list pods in x", "certain list secrets (cluster-scoped)", "certain watch pods in x"},
		},
		{
			name: "heredoc apply: get, create and a possible patch",
			src:  "ns=n1\nnode=w1\nkubectl apply -f - <<EOF\napiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: DPUNode\nmetadata:\n  name: $node\n  namespace: $ns\nEOF\n",
			args: noArgs,
			want: []string{"certain create dpunodes.provisioning.dpu.nvidia.com in n1", "certain get dpunodes.provisioning.dpu.nvidia.com w1 in n1",
				"possible patch dpunodes.provisioning.dpu.nvidia.com w1 in n1"},
		},
		{
			name: "dash heredoc, multi-document, List and a cluster-scoped object",
			src:  "f() {\n\tcat <<-EOF | kubectl apply -f -\n\tapiVersion: v1\n\tkind: List\n\titems:\n\t- apiVersion: v1\n\t  kind: ConfigMap\n\t  metadata: {name: a}\n\t---\n\tapiVersion: v1\n\tkind: Namespace\n\tmetadata: {name: b}\n\tEOF\n}\nf\n",
			args: noArgs,
			want: []string{"certain create configmaps in dpf-operator-system", "certain create namespaces (cluster-scoped)",
				"certain get configmaps a in dpf-operator-system", "certain get namespaces b (cluster-scoped)",
				"possible patch configmaps a in dpf-operator-system", "possible patch namespaces b (cluster-scoped)"},
		},
		{
			name: "objects in a variable, piped by echo and fed by a here-string",
			src:  "yaml=$(cat <<EOF\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: c1\nEOF\n)\necho \"$yaml\" | kubectl create -f -\nkubectl delete -f - <<<\"$yaml\"\n",
			args: noArgs,
			want: []string{"certain create certificates.cert-manager.io in dpf-operator-system", "certain delete certificates.cert-manager.io c1 in dpf-operator-system"},
		},
		{
			name: "server-side apply is one patch",
			src:  "kubectl apply --server-side -f - <<'EOF'\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: $literal}\nEOF\n",
			args: noArgs,
			want: []string{"certain patch configmaps $literal in dpf-operator-system"},
		},
		{
			name: "retry loop with stderr discarded and failure ignored",
			src:  "for ((i = 1; i <= 5; i++)); do\n  v=$(kubectl get secret s -n x -o jsonpath='{.data.a}' 2> /dev/null || true)\n  if [ -n \"$v\" ]; then break; fi\n  sleep 1\ndone\n",
			args: noArgs,
			want: []string{"certain get secrets s in x [hidden] [ignored]"},
		},
		{
			name: "stderr: &>/dev/null hides, 2>&1 into a pipe hides, a plain pipe does not",
			src:  "kubectl get cm a &>/dev/null\nkubectl get cm b 2>&1 | grep x\nkubectl get cm c | base64 -d > f\nkubectl get cm d 2>&1 >/dev/null\n",
			args: noArgs,
			want: []string{"certain get configmaps a in dpf-operator-system [hidden]", "certain get configmaps b in dpf-operator-system [hidden]",
				"certain get configmaps c in dpf-operator-system", "certain get configmaps d in dpf-operator-system"},
		},
		{
			name: "status subresource patch: kubectl reads the status first",
			src:  "kubectl patch dpudevice d1 -n x --subresource status --type=merge -p '{\"status\":{}}'\nkubectl patch dpudevice d2 -n x --subresource=status -p '{}'\n",
			args: noArgs,
			want: []string{"certain get dpudevices.provisioning.dpu.nvidia.com/status d1 in x", "certain get dpudevices.provisioning.dpu.nvidia.com/status d2 in x",
				"certain patch dpudevices.provisioning.dpu.nvidia.com/status d1 in x", "certain patch dpudevices.provisioning.dpu.nvidia.com/status d2 in x"},
		},
		{
			name: "flag parsing loop with defaults: argument given",
			src:  flagScript,
			args: ArgsFromArgv([]string{"--external-certificate", "none", "--node", "w1"}),
			want: []string{"certain get secrets w1-server-secret in dpf-operator-system", "certain get configmaps version-cm in dpf-operator-system"},
		},
		{
			name: "flag parsing loop with defaults: default applies when absent",
			src:  flagScript,
			args: ArgsFromArgv([]string{"--node", "w1"}),
			want: []string{"certain get secrets w1-server-secret in dpf-operator-system", "certain get configmaps version-cm in dpf-operator-system"},
		},
		{
			name: "flag parsing loop: branch not taken",
			src:  flagScript,
			args: ArgsFromArgv([]string{"--external-certificate", "TODO", "--node", "w1"}),
			want: []string{"certain get configmaps version-cm in dpf-operator-system"},
		},
		{
			name: "flag parsing loop: unknown arguments make the branch possible",
			src:  flagScript,
			want: []string{"certain get configmaps version-cm in dpf-operator-system", "possible get secrets ${node}-server-secret in dpf-operator-system",
				"possible get secrets worker-server-secret in dpf-operator-system"},
		},
		{
			name: "flag parsing loop: a partly unknown argument",
			src:  flagScript,
			args: mustParseArgs(t, "--external-certificate $CERT --node w1"),
			want: []string{"certain get configmaps version-cm in dpf-operator-system", "possible get secrets w1-server-secret in dpf-operator-system"},
		},
		{
			name: "a branch that exits makes the other one certain",
			src:  "error() { echo \"$*\" >&2; exit 1; }\nif ! out=$(kubectl version 2>&1); then\n  error \"no cluster\"\nfi\nif [ -z \"$x\" ]; then error missing; else kubectl get cm \"$x\"; fi\n",
			args: noArgs,
			want: []string{"certain get /version [hidden]", "certain get configmaps ${x} in dpf-operator-system"},
		},
		{
			name: "a conditional return makes what follows possible",
			src:  "f() {\n  if kubectl get cm a -o name 2>/dev/null; then return 0; fi\n  kubectl create cm a\n}\nf\nkubectl get cm b\n",
			args: noArgs,
			want: []string{"certain get configmaps a in dpf-operator-system [hidden]", "certain get configmaps b in dpf-operator-system",
				"possible create configmaps in dpf-operator-system"},
		},
		{
			name: "exit inside a command substitution only ends the subshell",
			src:  "x=$(if [ -z \"$y\" ]; then exit 1; fi; echo v)\nkubectl get cm c\n",
			args: noArgs,
			want: []string{"certain get configmaps c in dpf-operator-system"},
		},
		{
			name: "&& and || chains",
			src:  "kubectl get cm a && kubectl delete cm a\nkubectl get cm b || kubectl create cm b\ntrue && kubectl get cm c\nfalse && kubectl get cm d\n",
			args: noArgs,
			want: []string{"certain get configmaps a in dpf-operator-system", "certain get configmaps b in dpf-operator-system",
				"certain get configmaps c in dpf-operator-system", "possible create configmaps in dpf-operator-system",
				"possible delete configmaps a in dpf-operator-system"},
		},
		{
			name: "functions: arguments, locals, recursion guard, uncalled functions",
			src:  "get() { local kind=$1 name=$2; kubectl get \"$kind\" \"$name\"; get \"$kind\" \"$name\"; }\nget secret s1\nget DPUDevice d1\nname=outer\nunused() { kubectl delete secret \"$name\"; }\n",
			args: noArgs,
			want: []string{"certain get dpudevices.provisioning.dpu.nvidia.com d1 in dpf-operator-system", "certain get secrets s1 in dpf-operator-system",
				"possible delete secrets outer in dpf-operator-system"},
		},
		{
			name: "case: known word is certain, unknown word possible",
			src:  "mode=a\ncase \"$mode\" in\n  a) kubectl get cm a ;;\n  *) kubectl get cm other ;;\nesac\ncase \"$1\" in\n  x|y) kubectl get cm x ;;\nesac\n",
			want: []string{"certain get configmaps a in dpf-operator-system", "possible get configmaps x in dpf-operator-system"},
		},
		{
			name: "for over known words, over an unresolved list",
			src:  "for n in a b; do kubectl get cm \"$n\"; done\nfor d in /sys/bus/pci/devices/*; do kubectl get dpudevice \"$(basename $d)\"; done\n",
			args: noArgs,
			want: []string{"certain get configmaps a in dpf-operator-system", "certain get configmaps b in dpf-operator-system",
				"certain get dpudevices.provisioning.dpu.nvidia.com $(basename $d) in dpf-operator-system"},
		},
		{
			name: "while with an unresolved condition: body possible",
			src:  "while ! kubectl get cm ready 2>/dev/null; do kubectl get pods; sleep 1; done\n",
			args: noArgs,
			want: []string{"certain get configmaps ready in dpf-operator-system [hidden]", "possible list pods in dpf-operator-system"},
		},
		{
			name: "assignments in a pipeline do not leak",
			src:  "x=a\necho b | while read -r x; do :; done\nkubectl get cm \"$x\"\n",
			args: noArgs,
			want: []string{"certain get configmaps a in dpf-operator-system"},
		},
		{
			name: "parameter expansion: defaults, case, patterns, arrays",
			src:  "ns=${NS:-dpf-operator-system}\nS=ABC\nn=${S,,}\np=0000:3b:00.0\narr=(one two)\narr+=(three)\nkubectl get cm \"${n}-${p//[:.]/-}\" -n \"$ns\"\nkubectl get cm \"${arr[2]}\" \"${#arr[@]}\" ${p%%:*}\n",
			args: noArgs,
			want: []string{"certain get configmaps 0000 in dpf-operator-system", "certain get configmaps 3 in dpf-operator-system",
				"certain get configmaps abc-0000-3b-00-0 in dpf-operator-system", "certain get configmaps three in dpf-operator-system"},
		},
		{
			name: "logs, exec, version, auth, wait, label, delete by selector",
			src:  "kubectl logs p1 -c c\nkubectl exec p2 -- ls\nkubectl version --client\nkubectl auth can-i get pods\nkubectl wait pod/p3 --for=condition=Ready\nkubectl label node n1 a=b\nkubectl delete pods -l app=x\n",
			args: noArgs,
			want: []string{"certain create pods/exec p2 in dpf-operator-system", "certain create selfsubjectaccessreviews.authorization.k8s.io (cluster-scoped)",
				"certain delete pods ${each} in dpf-operator-system", "certain get nodes n1 (cluster-scoped)",
				"certain get pods p2 in dpf-operator-system", "certain get pods p3 in dpf-operator-system", "certain get pods/log p1 in dpf-operator-system",
				"certain list pods in dpf-operator-system", "certain list pods p3 in dpf-operator-system", "certain patch nodes n1 (cluster-scoped)",
				"certain watch pods p3 in dpf-operator-system"},
		},
		{
			// A run that ends in exit, whatever its status, is not one that
			// completes: a --help or nothing-to-do path does not make the
			// work after it possible. The path past `A || exit` says why.
			name: "after a conditional exit, certain",
			src:  "[ -n \"$BAD\" ] && exit 1\nkubectl get cm a\nif [ -n \"$SKIP\" ]; then exit 0; fi\nkubectl get cm b\n[ -z \"$X\" ] || exit 0\nkubectl get cm c\n",
			args: noArgs,
			want: []string{"certain get configmaps a in dpf-operator-system", "certain get configmaps b in dpf-operator-system",
				"certain get configmaps c in dpf-operator-system"},
		},
		{
			// kubectl watches one object, and waits on each, with a
			// metadata.name field selector, which RBAC reads as the name.
			name: "watch and wait by name, field selector by name",
			src: "kubectl get secret w1 -w\nkubectl wait --for=delete secret/w2\nkubectl get secrets --field-selector metadata.name=w3 -w\n" +
				"kubectl get cm --field-selector=status.x=y,metadata.name==w4\nkubectl wait --for=condition=Ready pods -l app=x\n",
			args: noArgs,
			want: []string{"certain get pods ${each} in dpf-operator-system", "certain get secrets w1 in dpf-operator-system",
				"certain get secrets w2 in dpf-operator-system", "certain list configmaps w4 in dpf-operator-system",
				"certain list pods ${each} in dpf-operator-system", "certain list pods in dpf-operator-system",
				"certain list secrets w2 in dpf-operator-system", "certain list secrets w3 in dpf-operator-system",
				"certain watch pods ${each} in dpf-operator-system", "certain watch secrets w1 in dpf-operator-system",
				"certain watch secrets w2 in dpf-operator-system", "certain watch secrets w3 in dpf-operator-system"},
		},
		{
			name: "wrappers and an unknown kind",
			src:  "sudo -E kubectl get cm a\nenv A=b timeout 10 kubectl get widgets w1\ncommand -v kubectl >/dev/null\n",
			args: noArgs,
			want: []string{"certain get configmaps a in dpf-operator-system", "possible get widgets w1 in dpf-operator-system [unknown kind]"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := lintSource(t, tc.src, tc.args)
			got := summarize(r.Findings)
			sort.Strings(tc.want)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("findings:\n  %s\nwant:\n  %s\nwarnings: %v", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "), r.Warnings)
			}
		})
	}
}

const flagScript = `#!/bin/bash
external_certificate="none"
node="worker"
while [[ $# -gt 0 ]]; do
  case $1 in
    --external-certificate) external_certificate="$2"; shift 2 ;;
    --node) node="$2"; shift 2 ;;
    *) echo "Unknown option: $1"; exit 1 ;;
  esac
done
kubectl get cm version-cm
if [ "$external_certificate" == "none" ]; then
  kubectl get secret "$node-server-secret"
fi
`

func mustParseArgs(t *testing.T, line string) *Args {
	t.Helper()
	a, err := ParseArgs(line)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Code run later that cannot call kubectl is no gap in the check.
func TestNoWarningsWithoutKubectl(t *testing.T) {
	src := "trap 'echo bye' INT\ntrap - EXIT\necho x | xargs echo\nbash -c \"echo hi\"\nbash ./other.sh\nalias ll='ls -l'\n"
	if r := lintSource(t, src, ArgsFromArgv(nil)); len(r.Warnings) > 0 {
		t.Errorf("warnings: %+v", r.Warnings)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		args *Args
		want string
	}{
		{name: "eval", src: "eval \"kubectl get cm x\"\n", want: "t.sh:1: eval is not followed"},
		{name: "trap handler", src: "trap 'kubectl delete cm tmp' EXIT\n", want: "t.sh:1: a trap handler is not followed"},
		{name: "trap of a function", src: "cleanup() { kubectl delete cm tmp; }\ntrap cleanup EXIT\n", want: "t.sh:2: a trap handler is not followed"},
		{name: "xargs", src: "echo s3 | xargs kubectl get secret\n", want: "t.sh:1: xargs is not followed"},
		{name: "bash -c", src: "bash -c \"kubectl get secret s7\"\n", want: "t.sh:1: bash -c is not followed"},
		{name: "sh -c with an unknown string", src: "sh -c \"$cmd\"\n", want: "t.sh:1: sh -c is not followed"},
		{name: "alias", src: "shopt -s expand_aliases\nalias k=/usr/bin/kubectl\nk get secret s4\n", want: "t.sh:2: alias is not followed"},
		{name: "bash by path", src: "/bin/bash -c 'kubectl get secret s'\n", want: "t.sh:1: bash -c is not followed"},
		{name: "bash behind a wrapper", src: "timeout 30 bash -c 'kubectl get secret s'\n", want: "t.sh:1: bash -c is not followed"},
		{name: "sh -ec", src: "env A=1 sh -ec 'kubectl get secret s'\n", want: "t.sh:1: sh -c is not followed"},
		{name: "xargs behind sudo", src: "echo s | sudo xargs kubectl get secret\n", want: "t.sh:1: xargs is not followed"},
		{name: "-c with a kubectl variable", src: "bash -c '$KUBECTL get secret s'\n", want: "t.sh:1: bash -c is not followed"},
		{name: "apply from a file", src: "kubectl apply -f manifests/dpunode.yaml\n", want: "t.sh:1: kubectl apply -f manifests/dpunode.yaml reads a file lint does not follow"},
		{name: "apply from an unknown input", src: "kubectl apply -f - < \"$f\"\n", want: "t.sh:1: kubectl apply -f - reads objects from an input lint cannot resolve"},
		{name: "unparseable objects", src: "kubectl apply -f - <<EOF\nkind: [\nEOF\n", want: "cannot read the objects kubectl reads from stdin"},
		{name: "unmodelled verb", src: "kubectl rollout restart deploy/x\n", want: "t.sh:1: kubectl rollout is not modelled"},
		{name: "unresolved verb", src: "kubectl $verb pods\n", want: "t.sh:1: the kubectl command is not resolved: ${verb}"},
		{name: "every run fails", src: flagScript, args: ArgsFromArgv([]string{"--bogus"}),
			want: "t.sh:8: with these arguments every run ends in a failing exit here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = ArgsFromArgv(nil)
			}
			r := lintSource(t, tc.src, args)
			var got []string
			for _, w := range r.Warnings {
				got = append(got, fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Message))
			}
			if !strings.Contains(strings.Join(got, "\n"), tc.want) {
				t.Errorf("warnings %q, want one containing %q", got, tc.want)
			}
		})
	}
}
