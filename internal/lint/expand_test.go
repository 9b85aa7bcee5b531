package lint

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFullyKnownAgainstBash checks every fully known expansion lint hands to
// mvdan.cc/sh/v3/expand against what bash itself prints. Where bash fails,
// lint must not claim a value; unknown marks the few forms bash accepts that
// lint leaves unresolved on purpose.
func TestFullyKnownAgainstBash(t *testing.T) {
	const setup = `x=abcabc; y='HELLO wOrld'; z=a.b.c.d; p=0000:3b:00.0; s='*ab*'; e=; n=5; h=ff; ex=1+2; us=1_000; bb=0b101
arr=(10 20 30); nm=n; i=1; sh=70`
	tests := []struct {
		expr    string
		unknown bool // bash prints a value, lint leaves it unknown
	}{
		// Pattern removal.
		{expr: "${x#a*}"}, {expr: "${x##a*}"}, {expr: "${x%b*}"}, {expr: "${x%%b*}"},
		{expr: "${z%.*}"}, {expr: "${z%%.*}"}, {expr: "${z#*.}"}, {expr: "${z##*.}"}, {expr: "${p%%:*}"},
		{expr: `${s#"*"}`}, {expr: `${s#\*}`}, {expr: "${s#*}"}, {expr: "${s%'*'}"}, {expr: "${x#$e}"}, {expr: "${x#[a-b]}"},
		{expr: "${x#?(a)}"}, {expr: "${e%%*}"},
		// Replacement.
		{expr: "${x/b/X}"}, {expr: "${x//b/X}"}, {expr: "${x/#a/X}"}, {expr: "${x/#b/X}"}, {expr: "${x/%c/X}"}, {expr: "${x/%b/X}"},
		{expr: "${x/#/X}"}, {expr: "${x/%/X}"}, {expr: "${x/#*/X}"}, {expr: "${p//[:.]/-}"}, {expr: "${x//?/.}"}, {expr: "${x/b}"},
		{expr: "${x//}"}, {expr: "${x/*/Z}"}, {expr: `${s//"*"/S}`}, {expr: "${s//\\*/S}"}, {expr: "${x//b*c/_}"}, {expr: "${z//./$x}"}, {expr: "${x/b/[&]}", unknown: true},
		// Case changes.
		{expr: "${x^^}"}, {expr: "${x,,}"}, {expr: "${x^}"}, {expr: "${x,}"}, {expr: "${y^^}"}, {expr: "${y,,}"}, {expr: "${y^}"},
		{expr: "${y,}"}, {expr: "${x^^[ab]}"}, {expr: "${y,,[A-M]}"}, {expr: "${e^^}"},
		// Slicing.
		{expr: "${x:1}"}, {expr: "${x:1:2}"}, {expr: "${x: -2}"}, {expr: "${x: -2:1}"}, {expr: "${x:1:-1}"}, {expr: "${x:10}"},
		{expr: "${x:2:-5}"}, {expr: "${x:2:-4}"}, {expr: "${x: -10}"}, {expr: "${x: -10:2}"}, {expr: "${x:0:0}"}, {expr: "${x:i+1:n-3}"},
		{expr: "${x:10:-1}"}, {expr: "${x:-2}"}, {expr: "${x:0b1}"},
		// Arithmetic and bash number syntax.
		{expr: "$((16#ff))"}, {expr: "$((2#101))"}, {expr: "$((36#z))"}, {expr: "$((36#Z))"}, {expr: "$((37#a))"}, {expr: "$((37#A))"},
		{expr: "$((64#@))"}, {expr: "$((64#_))"}, {expr: "$((64#zZ9))"}, {expr: "$((65#1))"}, {expr: "$((1#1))"}, {expr: "$((2#2))"},
		{expr: "$((16#))"}, {expr: "$((0x1F))"}, {expr: "$((0X1f))"}, {expr: "$((0x))"}, {expr: "$((017))"}, {expr: "$((08))"},
		{expr: "$((0))"}, {expr: "$((00))"}, {expr: "$((0b101))"}, {expr: "$((0B1))"}, {expr: "$((0o17))"}, {expr: "$((1_000))"},
		{expr: "$((1e3))"}, {expr: "$((bb))"}, {expr: "$((us + 1))"}, {expr: "$(($us))"}, {expr: "$((16#$h))"}, {expr: "$((h))", unknown: true},
		{expr: "$((9223372036854775807))"}, {expr: "$((9223372036854775807 + 1))"}, {expr: "$((9223372036854775808))", unknown: true},
		{expr: "$((-9223372036854775807 - 1))"}, {expr: "$(((-9223372036854775807 - 1) / -1))"}, {expr: "$(((-9223372036854775807 - 1) % -1))"},
		{expr: "$((1 << 63))"}, {expr: "$((1 << 64))"}, {expr: "$((1 << -1))"}, {expr: "$((8 >> 65))"}, {expr: "$((-8 >> 1))"},
		{expr: "$((1 << sh))"}, {expr: "$((i <<= 65, i))"}, {expr: "$((2 ** 62))"}, {expr: "$((2 ** 64))"}, {expr: "$((2 ** -1))"},
		{expr: "$((0 ** 0))"}, {expr: "$((7 / 0))"}, {expr: "$((7 % 0))"}, {expr: "$((-7 / 2))"}, {expr: "$((-7 % 2))"},
		{expr: "$((k = 3, k * 2))"}, {expr: "$((n += 2, n))"}, {expr: "$((i++ + i))"}, {expr: "$((--n))"}, {expr: "$((1 ? 2 : 3))"},
		{expr: "$((0 && 1 / 0))"}, {expr: "$((1 || 1 / 0))"}, {expr: "$((010 + 0x10 + 2#10))"}, {expr: "$((+-5))"}, {expr: "$((~0))"},
		{expr: "$((!5))"}, {expr: "$((5 == 5 && 3 > 2))"}, {expr: "$((nm))"}, {expr: "$((nm * 2))"}, {expr: "$((e + 1))"},
		{expr: "$((ex))", unknown: true}, {expr: "$((${#x} + 1))"}, {expr: "$((${arr[1]} + arr[2]))"}, {expr: "$((${#arr[@]}))"}, {expr: "${arr[1]#2}"}, {expr: "${arr[2]/3/x}"}, {expr: "${#arr[5]}"}, {expr: "${arr[5]:-d}"}, {expr: "${arr[1]:1}"},
		{expr: "$((unset_var + 1))", unknown: true}, {expr: "$(($(echo 6) * 7))"}, {expr: `$((" 5 "))`}, {expr: "$((__lint_operand_0 + 1))", unknown: true}, {expr: "$((__lint_target_3 += 1))", unknown: true}, {expr: "$((x=__lint_operand_0, x + $n))", unknown: true}, {expr: "$((nm++))", unknown: true}, {expr: "$((nm += 1))", unknown: true}, {expr: "$((nm = 1, nm))"}, {expr: "$((k))", unknown: true},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			out, _, err := bash(setup + "\nprintf %s \"" + tc.expr + "\"")
			got, known := lintValue(t, setup+"\n__r=\""+tc.expr+"\"\n")
			switch {
			case err != nil || tc.unknown:
				if known {
					t.Errorf("lint: %q, want unknown (bash: %q, %v)", got, out, err)
				}
			case !known:
				t.Errorf("lint: unknown, bash: %q", out)
			case got != out:
				t.Errorf("lint: %q, bash: %q", got, out)
			}
		})
	}
}

// TestANSICAgainstBash: $'...' escapes are decoded as bash does.
func TestANSICAgainstBash(t *testing.T) {
	for _, q := range []string{`$'a\nb\tc'`, `$'50%d %s%%'`, `$'\x41\e\'\"\\\?'`, `$'a\0b'`, `$'\101\r'`} {
		out, _, err := bash("printf %s " + q)
		got, known := lintValue(t, "__r="+q+"\n")
		if err != nil || !known || got != out {
			t.Errorf("%s: lint %q (known %v), bash %q (%v)", q, got, known, out, err)
		}
	}
}

// TestIntegerTestsAgainstBash: [[ ]] reads its operands as arithmetic, test
// and [ read decimals only. An operand bash rejects (it says so on stderr)
// must be unknown to lint.
func TestIntegerTestsAgainstBash(t *testing.T) {
	for _, c := range []string{"[[ 0x10 -eq 16 ]]", "[[ 16#ff -eq 255 ]]", "[[ 010 -eq 8 ]]", "[[ 010 -eq 10 ]]", "[[ $n -lt 2#101 ]]",
		"[[ n -gt 4 ]]", "[[ 0b1 -eq 1 ]]", "[[ 1_0 -eq 10 ]]", "[ 010 -eq 10 ]", "[ 0x10 -eq 16 ]", "[ 0b1 -eq 1 ]", "[ ' 7' -ge 7 ]",
		"test +3 -ne 3"} {
		t.Run(c, func(t *testing.T) {
			src := "n=5\n" + c + " && __r=0 || __r=1\n"
			out, stderr, err := bash(src + "printf %s $__r")
			if err != nil {
				t.Fatalf("bash: %v", err)
			}
			got, known := lintValue(t, src)
			switch {
			case stderr != "":
				if known {
					t.Errorf("lint: %q, want unknown (bash: %s)", got, stderr)
				}
			case !known || got != out:
				t.Errorf("lint: %q (known %v), bash: %q", got, known, out)
			}
		})
	}
}

func bash(src string) (stdout, stderr string, err error) {
	var o, e strings.Builder
	cmd := exec.Command("/bin/bash", "-c", src)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// lintValue runs src with lint's interpreter and returns $__r.
func lintValue(t *testing.T, src string) (string, bool) {
	t.Helper()
	s, err := ParseScript("t.sh", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	in := newInterp("t.sh", &Options{})
	st := in.stmts(newState(), s.file.Stmts, ioctx{})
	v, ok := st.vars["__r"]
	if !ok {
		return "", false
	}
	return v.val.exact()
}

func TestBashNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-5": true, "+5": true, "0x": true, "0xfF": true, "017": true, "16#ff": true, "64#_@": true, "36#Zz": true,
		"9223372036854775807": true, "": false, "-": false, "08": false, "0b1": false, "0o7": false, "1_0": false, "1#0": false,
		"65#1": false, "16#": false, "#1": false, "2#2": false, "9223372036854775808": false, "0x8000000000000000": false, "1e3": false,
		strings.Repeat("9", 30): false,
	} {
		if got := bashNumber(s); got != want {
			t.Errorf("bashNumber(%q) = %v, want %v", s, got, want)
		}
	}
}
