package lint

import (
	"encoding/xml"
	"fmt"
	"io"
	"path/filepath"
)

// JUnit XML as CI systems read it (Jenkins, GitLab, GitHub test reporters):
// <testsuites> with one <testsuite> per script and one <testcase> per
// request of a kubectl call, and one per call lint could not check.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr"`
	Line      int           `xml:"line,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure"`
	Skipped   *junitMessage `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit renders the report as JUnit XML. A denial that fails the run
// (see Report.Failed) is a <failure>; a possible denial below --fail-on
// passes with the denial in <system-out>; suppressed denials and calls lint
// could not check are <skipped>.
func WriteJUnit(w io.Writer, r *Report) error {
	all := junitSuites{Name: "dpfdoctor lint"}
	index := map[string]int{}
	for _, s := range r.Scripts {
		index[s] = len(all.Suites)
		all.Suites = append(all.Suites, junitSuite{Name: s, Time: "0", Cases: []junitCase{}})
	}
	add := func(file string, c junitCase) { // every finding's file is one of r.Scripts
		c.Classname, c.File, c.Time = filepath.ToSlash(file), filepath.ToSlash(file), "0"
		s := &all.Suites[index[file]]
		s.Cases = append(s.Cases, c)
		s.Tests++
		if c.Failure != nil {
			s.Failures++
		}
		if c.Skipped != nil {
			s.Skipped++
		}
	}
	for _, f := range r.Findings {
		c := junitCase{Name: fmt.Sprintf("line %d: %s needs %s", f.Line, f.Call, f.Needs()), Line: f.Line}
		code := f.Code()
		msg := fmt.Sprintf("%s: denied to %s: %s", code, r.Subject.User, f.Decision.Reason)
		if f.Why != "" {
			msg += " (possible: " + f.Why + ")"
		}
		switch {
		case code == "":
			c.SystemOut = "allowed by " + f.Decision.By
		case f.Suppressed != nil:
			c.Skipped = &junitMessage{Message: suppressedNote(f.Suppressed)}
		case code == RuleDenied || r.FailOn == Possible:
			c.Failure = &junitMessage{Message: msg, Type: code, Text: textLine(f)}
		default:
			c.SystemOut = msg
		}
		add(f.File, c)
	}
	for _, wn := range r.Warnings {
		msg := RuleNotChecked + ": " + wn.Message
		if wn.Suppressed != nil {
			msg = suppressedNote(wn.Suppressed)
		}
		add(wn.File, junitCase{Name: fmt.Sprintf("line %d: not checked", wn.Line), Line: wn.Line, Skipped: &junitMessage{Message: msg}})
	}
	for _, s := range all.Suites {
		all.Tests, all.Failures, all.Skipped = all.Tests+s.Tests, all.Failures+s.Failures, all.Skipped+s.Skipped
	}
	out, err := xml.MarshalIndent(all, "", "  ")
	if err == nil {
		_, err = fmt.Fprintf(w, "%s%s\n", xml.Header, out)
	}
	if err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	return nil
}
