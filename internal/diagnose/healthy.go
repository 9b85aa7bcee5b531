package diagnose

// healthy reports the pods that are Ready.
func healthy(v *view) []Finding {
	f := Finding{Class: ClassHealthy, Code: CodeHealthy, Severity: SeverityInfo, NextStep: "nothing to do"}
	for _, p := range v.b.Pods {
		if p.Ready {
			f.addPod(p.Name, "Ready")
		}
	}
	if len(f.Pods) == 0 {
		return nil
	}
	f.Summary = plural(len(f.Pods), "pod is", "pods are") + " Ready"
	return []Finding{f}
}
