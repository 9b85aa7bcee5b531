package diagnose

// healthy reports the pods that are Ready.
func healthy(v *view) []Finding {
	b := v.b
	var pods []string
	for _, p := range b.Pods {
		if p.Ready {
			pods = append(pods, p.Name)
		}
	}
	if len(pods) == 0 {
		return nil
	}
	f := Finding{
		Class:    ClassHealthy,
		Code:     CodeHealthy,
		Severity: SeverityInfo,
		Summary:  plural(len(pods), "pod is", "pods are") + " Ready",
		Pods:     pods,
		NextStep: "nothing to do",
	}
	for _, p := range pods {
		f.setDetail(p, "Ready")
	}
	return []Finding{f}
}
