package lint

import (
	"errors"
	"os"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

// FuzzParseScript: any input parses to a script or gives a *ScriptError with
// a position, and whatever parses can be linted without a panic.
func FuzzParseScript(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new input, which is slow for
	// whole scripts. patterns.sh is the largest one kept.
	for _, p := range []string{"testdata/patterns.sh", "testdata/malformed.sh"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(flagScript))
	f.Add([]byte("kubectl apply -f - <<EOF\napiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: ConfigMap, metadata: {name: $x}}]\nEOF\n"))
	f.Add([]byte("f() { f; kubectl get cm \"${a//[:.]/-}\" \"${b:-x}\" \"${#c[@]}\"; }; f; while true; do break; done; for ((;;)); do continue; done"))
	f.Add([]byte("x=(a b); x+=(c); x[5]=d; echo \"${x[@]:1:2}\" $(( 1 << 70 )) $(( 7 / 0 )); kubectl get $x ${x[1]} -n${y%%.*}"))
	f.Add([]byte("x=$(( 16#ff + 64#_ + 0x + 017 )) y=$(( 0b1 + 1_0 + 08 + 2#2 )); (( i <<= 70, k = j++, z = x ? 1 / 0 : 2 ))\nkubectl get cm ${x/#1/a} ${x/%5/b} ${x: -2:-9} ${x^^[ab]} ${x,,} ${x%%*5}\n"))
	f.Add([]byte("case $1 in a) ;& b) ;;& *) exit;; esac; until false; do kubectl wait pod/$p --for=delete; done"))
	set, _ := rbac.LoadManifests("testdata/role-v25.4.0.yaml")
	if set == nil {
		set = &rbac.Set{}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := ParseScript("fuzz.sh", src)
		if err != nil {
			var se *ScriptError
			if !errors.As(err, &se) || se.Line < 1 {
				t.Fatalf("parse error without a position: %v", err)
			}
			return
		}
		for _, args := range []*Args{nil, ArgsFromArgv([]string{"--external-certificate", "none", "--kube-node-ref", "w"})} {
			r := Lint([]*Script{s}, set, Options{Args: args, DefaultNamespace: "ns", Subject: access.ServiceAccount("ns", "sa")})
			for _, fd := range r.Findings {
				if fd.Line < 1 || fd.Certainty != Certain && fd.Certainty != Possible {
					t.Fatalf("bad finding %+v", fd)
				}
			}
		}
	})
}
